"""The modem adapter: command table (commands.py), line classifier (codes.py), AT framing (at.py), pure parsers (lex.py, parse/), driver and dialects."""

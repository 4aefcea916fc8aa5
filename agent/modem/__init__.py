"""The modem adapter: command table (commands.py), line classifier (codes.py), AT framing
(at.py), pure parsers (lex.py, parse/), their JSON names (vocabulary.py), driver, dialects."""

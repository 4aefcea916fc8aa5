"""The modem adapter: AT framing (at.py), pure parsers (parse.py), driver and dialects."""

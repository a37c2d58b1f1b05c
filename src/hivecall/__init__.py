"""hivecall: talk out loud to the AI agents on your computer."""

__version__ = "0.1.0"

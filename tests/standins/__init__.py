"""Local stand-ins for the outside services hivecall talks to (model servers and such)."""

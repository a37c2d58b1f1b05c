"""Agent records and the context gathered for each call and turn."""

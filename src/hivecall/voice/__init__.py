"""The voice layer: the one tool, the instructions, and the call glue for each voice provider."""

"""Fixed fake credentials the tests share."""

# The user's OpenAI key in BYOK tests: the hub mints Realtime secrets with it and the Realtime
# stand-in accepts only it. It must never appear in a log, an error or a response.
FAKE_OPENAI_KEY = "sk-test-hivecall-byok-key-0123456789abcdef"

# Another user key tests set from the dashboard.
REPLACEMENT_OPENAI_KEY = "sk-test-hivecall-replacement-key-9876543210"

# Everything the leak scanner (tests/leakscan.py) looks for in responses and logs.
WATCHED_SECRETS = (FAKE_OPENAI_KEY, REPLACEMENT_OPENAI_KEY)

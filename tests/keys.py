"""Fixed fake credentials the tests share."""

# The user's OpenAI key in BYOK tests: the hub mints Realtime secrets with it and the Realtime
# stand-in accepts only it. It must never appear in a log, an error or a response.
FAKE_OPENAI_KEY = "sk-test-hivecall-byok-key-0123456789abcdef"

# Another user key tests set from the dashboard.
REPLACEMENT_OPENAI_KEY = "sk-test-hivecall-replacement-key-9876543210"

# The hub's LiveKit credentials in cloud-call tests (the LiveKit stand-in accepts only them).
# The secret signs tokens; it must never appear anywhere a person or LiveKit could read it.
LIVEKIT_API_KEY = "APIhivecallTest"
LIVEKIT_API_SECRET = "lk-test-secret-hivecall-0123456789abcdefghij"

# Everything the leak scanner (tests/leakscan.py) looks for in responses and logs.
WATCHED_SECRETS = (FAKE_OPENAI_KEY, REPLACEMENT_OPENAI_KEY, LIVEKIT_API_SECRET)

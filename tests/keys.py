"""Fixed fake credentials the tests share, and every one the leak scanner watches."""

# The user's OpenAI key in BYOK tests: the hub mints Realtime secrets with it and the Realtime
# stand-in accepts only it. It must never appear in a log, an error or a response.
FAKE_OPENAI_KEY = "sk-test-hivecall-byok-key-0123456789abcdef"

# Another user key tests set from the dashboard.
REPLACEMENT_OPENAI_KEY = "sk-test-hivecall-replacement-key-9876543210"

# The hub's LiveKit credentials in cloud-call tests (the LiveKit stand-in accepts only them).
# The secret signs tokens; it must never appear anywhere a person or LiveKit could read it.
LIVEKIT_API_KEY = "APIhivecallTest"
LIVEKIT_API_SECRET = "lk-test-secret-hivecall-0123456789abcdefghij"

# The owner token the app fixtures configure (tests/conftest.py OWNER). Clients send it; the hub
# keeps only its SHA-256 and never says it back.
OWNER_TOKEN = "test-owner-token-0123456789abcdefghij"

# Secrets other tests configure under their own names; tests/test_leakscan.py checks that each
# of these names still holds the value watched here.
HUB_OPENAI_KEY = "sk-hub-default-key-0123456789"  # tests/runtimes/conftest.py
OPENAI_CHAT_AGENT_KEY = "sk-agent-secret-key-9f8e7d6c5b4aXYZW"  # test_openai_chat.AGENT_KEY
# hivemind/test_client.py: a hivemind agent's api_key KEY:PASSWORD; the password is the secret
HIVEMIND_AGENT_PASSWORD = "The-remote-password-42"
# test_agent_isolation.py: the hub's own environment, which agents must never see
ISOLATION_OWNER_TOKEN = "owner-token-that-agents-must-never-see-0123"
ISOLATION_DB_PASSWORD = "pg-password-in-the-database-url"
# test_command_runtime.py / scripts/fake_agent.py: a key an agent prints on its stderr
AGENT_STDERR_KEY = "sk-abcdefghijklmnopqrstuvwx"
# Not watched: test_agent_isolation.AGENT_OWN_KEY, which its agent prints in its reply on
# purpose (an agent may say anything to its owner); the test checks it is sealed at rest.

# Everything the leak scanner (tests/leakscan.py) looks for; it also watches each HiveMind
# client's access key and password from the moment it is made.
WATCHED_SECRETS = (
    FAKE_OPENAI_KEY,
    REPLACEMENT_OPENAI_KEY,
    LIVEKIT_API_SECRET,
    OWNER_TOKEN,
    HUB_OPENAI_KEY,
    OPENAI_CHAT_AGENT_KEY,
    HIVEMIND_AGENT_PASSWORD,
    ISOLATION_OWNER_TOKEN,
    ISOLATION_DB_PASSWORD,
    AGENT_STDERR_KEY,
)

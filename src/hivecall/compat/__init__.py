"""OpenAI- and Ollama-compatible routes over hivecall's agents, with API keys.

Each agent is a model named after it. `routes` is what the main app serves (the two APIs next
to hivecall's own `/api/…`, keys required, plus the owner's `/api/keys`); `Listener` is the
optional separate port (`compat_port`) with only the two APIs' paths, where the owner may open
named agents to clients without a key (`compat_open_agents`).
"""

from hivecall.compat import keys
from hivecall.compat.access import Gate
from hivecall.compat.listener import Listener, check
from hivecall.compat.listener import routes as _api_routes

routes = [*_api_routes(Gate()), *keys.routes]

__all__ = ["Listener", "check", "routes"]

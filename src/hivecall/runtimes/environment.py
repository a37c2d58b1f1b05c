"""The environment an agent process starts with: an allowlist, never the hub's whole environment.

Agents take orders from principals with fewer rights than the owner (paired phones, agent-limited
API keys, HiveMind satellites, cloud-call guests), so "run printenv" must not hand over the hub's
secrets. An agent gets what a program needs to run as the user (PATH, HOME, locale, the XDG
folders where CLIs keep their own logins), the turn's ids, and the variables its record names:
passing a key to an agent is the record's explicit choice. The hub's own secrets (the env
variables of every setting marked secret, and every HIVECALL_*/LIVEKIT_* variable) can never be
named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from hivecall.settings import table

# Copied from the hub's environment when present.
BASE = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
)
BASE_PREFIXES = ("LC_",)

# What the hub itself sets for every turn.
TURN_VARS = ("HIVECALL_AGENT", "HIVECALL_TURN_ID", "HIVECALL_SESSION_ID")

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_RESERVED_PREFIXES = ("HIVECALL_", "LIVEKIT_")


def hub_secret_names() -> frozenset[str]:
    """Variables that carry the hub's secrets: the env of every secret setting."""
    return frozenset(env for row in table() if row.secret for env in row.env)


def refusal(name: str, *, inherit: bool) -> str | None:
    """Why an agent record may not name this variable, or None when it may.

    `inherit`: the record takes the hub's value (NAME) rather than giving its own (NAME=value).
    A value of the record's own may use any name but the hub's (a key meant for this agent).
    """
    if not NAME.match(name):
        return f"{name!r} is not an environment variable name"
    if name.startswith(_RESERVED_PREFIXES) or name in TURN_VARS:
        return f"{name} is the hub's own variable"
    if inherit and name in hub_secret_names():
        return (
            f"{name} holds one of the hub's own secrets; give the agent a key of its own "
            f"({name}=VALUE)"
        )
    return None


def agent_environment(
    hub: Mapping[str, str],
    named: Mapping[str, str | None],
    turn: Mapping[str, str],
) -> dict[str, str]:
    """The environment of one agent process.

    `named` is the agent record's choice: a name with a value sets it; a name with None takes
    the hub's value, if it has one. `turn` holds TURN_VARS.
    """
    env = {k: v for k, v in hub.items() if k in BASE or k.startswith(BASE_PREFIXES)}
    for name, value in named.items():
        if refusal(name, inherit=value is None) is not None:  # stored before a rule tightened
            continue
        if value is not None:
            env[name] = value
        elif name in hub:
            env[name] = hub[name]
    env.update(turn)
    return env

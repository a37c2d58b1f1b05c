"""The call state machine: ringing → connecting → talking → ended | failed, never backwards."""

from __future__ import annotations

PHASES = ("ringing", "connecting", "talking", "ended", "failed")
TERMINAL = frozenset({"ended", "failed"})

# For each phase, the phases a call may reach it from.
FROM: dict[str, tuple[str, ...]] = {
    "connecting": ("ringing",),
    "talking": ("ringing", "connecting"),
    "ended": ("ringing", "connecting", "talking"),
    "failed": ("ringing", "connecting", "talking"),
}

# The timestamp column each phase sets.
STAMP = {
    "connecting": "connecting_at",
    "talking": "talking_at",
    "ended": "ended_at",
    "failed": "ended_at",
}


def reached(current: str, target: str) -> bool:
    """True when a report of `target` changes nothing for a call in `current`: it is already
    there or past it (late "talking" after the end is harmless; "failed" after "ended" is not)."""
    if target in TERMINAL:
        return current == target
    return current in TERMINAL or PHASES.index(current) >= PHASES.index(target)

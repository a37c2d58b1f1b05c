"""Which call modes this hub can offer right now, and why not when it cannot."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from hivecall.errors import BadRequest, HivecallError
from hivecall.settings import Settings
from hivecall.voice.realtime import KEY_MISSING

LOCAL_EXTRA = "pip install 'hivecall[local]'"
# Modules the local speech pipeline imports; all of them ship in the `local` extra.
LOCAL_MODULES = ("aiortc", "faster_whisper", "piper", "webrtcvad")


@dataclass(frozen=True)
class Mode:
    name: str
    available: bool
    reason: str = ""
    code: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.name, "available": self.available}
        if not self.available:
            out["reason"] = self.reason
            out["code"] = self.code
        return out

    def error(self) -> HivecallError:
        return BadRequest(self.reason, code=self.code)


def byok(settings: Settings) -> Mode:
    if settings.openai_api_key:
        return Mode("byok", True)
    return Mode("byok", False, KEY_MISSING, "openai_key_missing")


def local(settings: Settings) -> Mode:
    if importlib.util.find_spec("hivecall.voice.local") is None:
        return Mode(
            "local", False, "local calls are not part of this hivecall version", "local_unavailable"
        )
    missing = [m for m in LOCAL_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return Mode("local", True)
    return Mode(
        "local",
        False,
        f"local calls need the speech extra (missing {', '.join(missing)}): {LOCAL_EXTRA}",
        "local_unavailable",
    )


def cloud(settings: Settings) -> Mode:
    return Mode(
        "cloud",
        False,
        "cloud calls are not enabled on this hub (they need LiveKit and the cloud plan)",
        "cloud_not_enabled",
    )


CHECKS = {"byok": byok, "local": local, "cloud": cloud}


def all_modes(settings: Settings) -> list[Mode]:
    return [check(settings) for check in CHECKS.values()]


def resolve(settings: Settings, asked: str | None) -> Mode:
    """The mode a call will use: the one asked for, else the default (auto: byok with a key,
    else local when installed, else byok so the error says to add a key)."""
    name = asked or settings.default_call_mode
    if name == "auto":
        for candidate in ("byok", "local"):
            mode = CHECKS[candidate](settings)
            if mode.available:
                return mode
        name = "byok"
    return CHECKS[name](settings)

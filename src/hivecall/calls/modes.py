"""Which call modes this hub can offer right now, and why not when it cannot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hivecall.calls.cloud.livekit import missing_settings
from hivecall.errors import HivecallError
from hivecall.settings import Settings
from hivecall.speech.models import problem as speech_problem
from hivecall.voice.realtime import KEY_MISSING


@dataclass(frozen=True)
class Mode:
    name: str
    available: bool
    reason: str = ""
    code: str = ""
    status: int = 400

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.name, "available": self.available}
        if not self.available:
            out["reason"] = self.reason
            out["code"] = self.code
        return out

    def error(self) -> HivecallError:
        return HivecallError(self.reason, code=self.code, status=self.status)


def byok(settings: Settings) -> Mode:
    if settings.openai_api_key:
        return Mode("byok", True)
    return Mode("byok", False, KEY_MISSING, "openai_key_missing")


def local(settings: Settings) -> Mode:
    if settings.local_max_calls == 0:
        return Mode(
            "local", False, "local calls are off (HIVECALL_LOCAL_MAX_CALLS=0)", "local_disabled"
        )
    if reason := speech_problem():
        return Mode("local", False, reason, "local_unavailable")
    return Mode("local", True)


def cloud(settings: Settings) -> Mode:
    """Cloud calls need the cloud plan (HIVECALL_CLOUD_CALLS) and a LiveKit server. 402: the
    hub works, this kind of call is what is not paid for or not set up."""
    missing = missing_settings(settings)
    if not settings.cloud_calls:
        reason = "cloud calls are not part of this hub's plan (HIVECALL_CLOUD_CALLS is off)"
        if missing:
            reason += f", and LiveKit is not set up ({', '.join(missing)} missing)"
        return Mode("cloud", False, reason, "cloud_not_enabled", 402)
    if missing:
        reason = f"cloud calls need a LiveKit server: set {', '.join(missing)}"
        return Mode("cloud", False, reason, "cloud_not_enabled", 402)
    return Mode("cloud", True)


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

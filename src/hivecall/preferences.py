"""Settings the owner changes from the dashboard (the OpenAI key, voice, model, call mode).

They are rows of the one settings table marked `editable`, stored in the hub's database (secrets
sealed with the home's secret box). Precedence, lowest first: defaults and the TOML file, then
the dashboard, then the environment: a value the environment sets is shown as pinned and cannot
be changed here, so what the hub runs with is never a surprise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hivecall.errors import Conflict
from hivecall.secretbox import SecretBox
from hivecall.settings import CALL_MODES, Settings, table
from hivecall.store import Store

PREFIX = "pref:"
EDITABLE = {r.name: r for r in table() if r.editable}


class SettingsPatch(BaseModel):
    """A change from the dashboard. A field set to null goes back to the configured value."""

    model_config = ConfigDict(extra="forbid")
    openai_api_key: str | None = Field(default=None, min_length=20, max_length=400)
    realtime_model: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$"
    )
    realtime_voice: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$"
    )
    default_call_mode: str | None = None

    @field_validator("openai_api_key")
    @classmethod
    def _one_word(cls, v: str | None) -> str | None:
        if v is not None and re.search(r"\s", v.strip()):
            raise ValueError("an OpenAI key is one word without spaces")
        return v.strip() if v is not None else None

    @field_validator("default_call_mode")
    @classmethod
    def _known_mode(cls, v: str | None) -> str | None:
        if v is not None and v not in CALL_MODES:
            raise ValueError(f"must be one of: {', '.join(CALL_MODES)}")
        return v


class Preferences:
    def __init__(
        self, *, store: Store, box: SecretBox, base: Settings, pinned: frozenset[str]
    ) -> None:
        self._store = store
        self._box = box
        self.base = base
        self.pinned = pinned
        self._stored: dict[str, str] = {}

    async def load(self) -> Settings:
        for name, row in EDITABLE.items():
            raw = await self._store.get_meta(PREFIX + name)
            if raw is None:
                continue
            self._stored[name] = self._box.unseal(raw, context=name) if row.secret else raw
        return self.effective()

    def effective(self) -> Settings:
        changes = {k: v for k, v in self._stored.items() if k not in self.pinned}
        return self.base.replace(**changes) if changes else self.base

    def sources(self) -> Mapping[str, str]:
        out = {}
        for name in EDITABLE:
            if name in self.pinned:
                out[name] = "environment"
            elif name in self._stored:
                out[name] = "dashboard"
            else:
                out[name] = "config"
        return out

    async def update(self, patch: SettingsPatch) -> Settings:
        """Apply the fields the patch names; a pinned one is refused before anything changes."""
        given = patch.model_dump(exclude_unset=True)
        locked = sorted(set(given) & self.pinned)
        if locked:
            envs = ", ".join(EDITABLE[n].env[0] for n in locked)
            raise Conflict(
                f"{', '.join(locked)} is set by the environment ({envs}); change it there",
                code="setting_pinned",
            )
        for name, value in given.items():
            if value is None:
                await self._store.delete_meta(PREFIX + name)
                self._stored.pop(name, None)
                continue
            row = EDITABLE[name]
            stored = self._box.seal(value, context=name) if row.secret else str(value)
            await self._store.set_meta(PREFIX + name, stored)
            self._stored[name] = value
        return self.effective()

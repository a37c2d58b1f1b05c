"""The hub's parts, opened once and shared by the web app and the CLI."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hivecall.agents.context import ContextCache
from hivecall.agents.records import AgentCreate, Agents
from hivecall.auth import Tokens
from hivecall.bridge import Bridge
from hivecall.calls import Calls, Failed, Sweeper, modes
from hivecall.calls.cloud.invites import Invites
from hivecall.calls.cloud.rooms import CloudCalls
from hivecall.pairing import Pairing
from hivecall.preferences import Preferences
from hivecall.runtimes import Runtimes
from hivecall.runtimes.presets import PRESETS
from hivecall.secretbox import SecretBox
from hivecall.settings import Settings, pinned
from hivecall.store import Store
from hivecall.voice.local.service import LocalCalls
from hivecall.voice.realtime import RealtimeMinter

log = logging.getLogger(__name__)

SEEDED = "agents_seeded"


@dataclass
class Hub:
    # What the hub runs with now: the configured settings with the dashboard's changes applied.
    # Handlers read it per request, so a change made in the dashboard applies at once.
    settings: Settings
    store: Store
    tokens: Tokens
    agents: Agents
    runtimes: Runtimes
    bridge: Bridge
    prefs: Preferences
    calls: Calls
    minter: RealtimeMinter
    contexts: ContextCache
    pairing: Pairing
    local: LocalCalls
    cloud: CloudCalls
    invites: Invites
    sweeper: Sweeper
    # Set when this start generated the owner token: shown once, then forgotten.
    new_owner_token: str | None = None

    @classmethod
    async def open(cls, settings: Settings, *, environ: Mapping[str, str]) -> Hub:
        settings.home.mkdir(parents=True, exist_ok=True)
        store = Store(url=settings.resolved_database_url)
        try:
            await store.migrate()
        except Exception:
            await store.aclose()
            raise
        box = SecretBox.open(settings.home)
        prefs = Preferences(store=store, box=box, base=settings, pinned=pinned(environ))
        agents = Agents(store=store, search_path=environ.get("PATH"), box=box)
        try:
            settings = await prefs.load()
            if sealed := await agents.seal_plain_keys():
                log.info("sealed agents' api keys stored in clear", extra={"count": sealed})
        except Exception:
            await store.aclose()
            raise
        runtimes = Runtimes(environ=environ, openai_api_key=lambda: hub.settings.openai_api_key)
        bridge = Bridge(
            store=store,
            agents=agents,
            runtimes=runtimes,
            turn_timeout=settings.turn_timeout,
            max_message_chars=settings.max_message_chars,
            spoken_max_chars=settings.spoken_max_chars,
        )
        tokens = Tokens(store=store)
        calls = Calls(store=store)
        contexts = ContextCache(bridge.recent)
        hub = cls(
            settings,
            store,
            tokens,
            agents,
            runtimes,
            bridge,
            prefs,
            calls,
            RealtimeMinter(),
            contexts,
            Pairing(store=store, tokens=tokens, calls=calls),
            LocalCalls(calls=calls, bridge=bridge, agents=agents),
            CloudCalls(store=store, calls=calls, tokens=tokens, agents=agents, contexts=contexts),
            Invites(store=store),
            Sweeper(
                calls=calls,
                timeout=lambda: hub.settings.call_connect_timeout,
                on_failed=lambda failed: hub.stop_media(failed),
            ),
        )
        return hub

    async def start(self, *, workspace: Path) -> None:
        """First-start chores for a serving hub: owner token, starter agents, crash recovery;
        then the sweeper, after one pass for the calls a stopped hub left past their timeout."""
        self.new_owner_token = await self.tokens.ensure_owner(self.settings.owner_token)
        await self.bridge.recover()
        await self.calls.recover()
        await self.sweeper.sweep()
        self.sweeper.start()
        if modes.cloud(self.settings).available:
            self.cloud.resume(self.settings)
        await self.seed_agents(workspace=workspace)

    async def stop_media(self, failed: Failed) -> None:
        """Stop what a call the hub failed still runs: a local call's peer, a cloud call's room
        (BYOK media is between the page and OpenAI: the page ends it)."""
        if failed.mode == "local":
            await self.local.hang_up(failed.id)
        elif failed.mode == "cloud":
            await self.cloud.end(self.settings, await self.calls.get(failed.id))

    async def seed_agents(self, *, workspace: Path) -> list[str]:
        """On the very first start, offer an agent for each coding CLI on PATH (else echo)."""
        if await self.store.get_meta(SEEDED) or await self.agents.list():
            return []
        path = self.agents.search_path
        found = [n for n in PRESETS if shutil.which(PRESETS[n].argv[0], path=path)]
        created: list[str] = []
        for name in found:
            await self.agents.create(AgentCreate(name=name, runtime=name, workspace=str(workspace)))
            created.append(name)
        if not created:
            await self.agents.create(
                AgentCreate(
                    name="echo",
                    runtime="echo",
                    description="Repeats what it hears until you add a real agent.",
                )
            )
            created.append("echo")
        await self.store.set_meta(SEEDED, "1")
        log.info("added starter agents", extra={"agents": created})
        return created

    async def aclose(self) -> None:
        await self.sweeper.aclose()
        await self.local.aclose()
        await self.cloud.aclose()
        await self.bridge.aclose()
        await self.minter.aclose()
        await self.runtimes.aclose()
        await self.store.aclose()

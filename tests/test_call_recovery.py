"""A hub that starts after a crash fails the local calls the dead process was hosting.

tests/test_crash_safety.py shows it with a real SIGKILL; this is the fast check of each kind.
"""

from __future__ import annotations

from pathlib import Path

from hivecall.agents.records import AgentCreate
from hivecall.auth import Principal
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.store.models import Call

OWNER = Principal("owner-token-id", "owner", ("*",), name="owner")


async def test_start_fails_local_calls_left_live_and_nothing_else(
    settings: Settings, workspace: Path
) -> None:
    hub = await Hub.open(settings, environ={})
    try:
        agent = await hub.agents.create(AgentCreate(name="coder", runtime="echo"))

        async def call(mode: str, *phases: str) -> Call:
            c = await hub.calls.create(agent_id=agent.id, mode=mode, who=OWNER)
            for phase in phases:
                c = await hub.calls.advance(c, phase)
            return c

        talking = await call("local", "connecting", "talking")
        connecting = await call("local", "connecting")
        ringing = await call("local")
        over = await call("local", "connecting", "talking", "ended")
        # Their media is between the browser and OpenAI or LiveKit: it may outlive the hub.
        byok = await call("byok", "talking")
        cloud = await call("cloud", "connecting")

        await hub.start(workspace=workspace)

        for c in (talking, connecting, ringing):
            fresh = await hub.calls.get(c.id)
            assert (fresh.state, fresh.error_code) == ("failed", "hub_restarted")
            assert fresh.ended_at is not None
            phases = [ln.text for ln in await hub.calls.lines(c.id) if ln.kind == "phase"]
            assert phases[-1] == "failed"
        assert (await hub.calls.get(over.id)).state == "ended"
        assert (await hub.calls.get(byok.id)).state == "talking"
        assert (await hub.calls.get(cloud.id)).state == "connecting"
        # A second start finds nothing more to do.
        assert await hub.calls.recover() == 0
    finally:
        await hub.aclose()

"""The client side: a hivecall agent whose brain is another hivecall hub, over HiveMind.

Two real hubs on 127.0.0.1: the remote one (the `hive` fixture, its echo agent behind its
HiveMind listener) and a local one whose `remote` agent has the hivemind runtime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hivecall.agents.records import AgentCreate
from hivecall.app import create_app
from hivecall.hivemind_protocol.client import HiveMindError, HiveMindSolver, Identity
from hivecall.hivemind_protocol.wire import V1_OFF
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.turns.handle import TurnResult
from hivecall.turns.request import TurnRequest
from tests.conftest import OWNER
from tests.hivemind.conftest import Cred, Hive, MakeHive, free_port


@pytest.fixture
async def local(tmp_path: Path, environ: dict[str, str], workspace: Path) -> AsyncIterator[Hub]:
    settings = Settings(
        home=tmp_path / "local-home",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'local.db'}",
        owner_token=OWNER,
        host="127.0.0.1",
        port=free_port(),
        hivemind_port=0,
    )
    app = create_app(settings, environ=environ, workspace=workspace)
    async with app.router.lifespan_context(app):
        yield app.state.hub


async def remote_agent(local: Hub, hive: Hive, cred: Cred, *, password: str | None = None) -> str:
    agent = await local.agents.create(
        AgentCreate(
            name="remote",
            runtime="hivemind",
            base_url=f"http://127.0.0.1:{hive.port}",
            api_key=f"{cred.key}:{password or cred.password}",
        )
    )
    return agent.id


async def ask(hub: Hub, message: str, session: str | None = None) -> TurnResult:
    handle = await hub.bridge.start(
        TurnRequest(agent="remote", message=message, source="test", session_id=session)
    )
    return await handle.result()


async def test_a_local_agent_asks_a_remote_hub(
    local: Hub, hive: Hive, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("hivecall", "websockets"):  # (aiosqlite's DEBUG echoes every SQL parameter)
        caplog.set_level(logging.DEBUG, logger=name)
    cred = await hive.add("downstream-hub")
    await remote_agent(local, hive, cred)
    first = await ask(local, "what are you working on", session="s-1")
    assert first.status == "done", first
    assert "what are you working on" in first.spoken  # the remote echo agent's answer
    second = await ask(local, "and after that", session="s-1")
    assert "and after that" in second.spoken
    remote_turns = await hive.hub.bridge.list_turns()
    assert sorted(t.message for t in remote_turns) == ["and after that", "what are you working on"]
    assert {t.source for t in remote_turns} == {"hivemind"}
    # one session here is one session there (the remote agent keeps the conversation)
    assert len({t.session_id for t in remote_turns}) == 1
    # and one connection carried both turns
    assert len(hive.listener.live) == 1
    assert cred.password not in caplog.text


async def test_the_password_never_leaves_the_record(hive: Hive) -> None:
    secret = "akey:The-remote-password-42"
    await hive.hub.agents.create(
        AgentCreate(name="remote", runtime="hivemind", base_url="http://10.0.0.9", api_key=secret)
    )
    transport = httpx.ASGITransport(app=hive.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as http:
        r = await http.get("/api/agents", headers={"Authorization": f"Bearer {OWNER}"})
    assert r.status_code == 200, r.text
    (agent,) = [a for a in r.json()["agents"] if a["name"] == "remote"]
    assert agent["runtime"] == "hivemind" and agent["api_key_set"] is True
    assert "The-remote-password-42" not in r.text and "akey" not in r.text


async def test_a_wrong_password_fails_the_turn_without_saying_it(
    local: Hub, hive: Hive, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("hivecall", "websockets"):  # (aiosqlite's DEBUG echoes every SQL parameter)
        caplog.set_level(logging.DEBUG, logger=name)
    cred = await hive.add("downstream-hub")
    wrong = "Not-the-password-at-all-12345"
    await remote_agent(local, hive, cred, password=wrong)
    result = await ask(local, "hello")
    assert result.status == "failed" and result.error_code == "runtime_auth_failed", result
    assert "refused" in result.spoken
    assert wrong not in (result.error_message or "") and wrong not in caplog.text
    assert await hive.hub.bridge.list_turns() == []


async def test_an_unreachable_hub(local: Hub) -> None:
    await local.agents.create(
        AgentCreate(
            name="remote",
            runtime="hivemind",
            base_url=f"http://127.0.0.1:{free_port()}",
            api_key="k:p",
        )
    )
    result = await ask(local, "hello")
    assert result.error_code == "runtime_unreachable", result


async def test_a_hivemind_agent_without_its_hub_is_misconfigured(local: Hub) -> None:
    await local.agents.create(AgentCreate(name="remote", runtime="hivemind"))
    result = await ask(local, "hello")
    assert result.error_code == "runtime_misconfigured", result


async def test_spoken_answer_like_upstreams_solver(hive: Hive) -> None:
    cred = await hive.add("script")
    identity = Identity.of(f"ws://127.0.0.1:{hive.port}", f"{cred.key}:{cred.password}")
    assert cred.password not in repr(identity)
    solver = HiveMindSolver(identity)
    answer = await asyncio.to_thread(solver.spoken_answer, "is the build green")
    assert "is the build green" in answer
    wrong = HiveMindSolver(Identity.of(f"127.0.0.1:{hive.port}", f"{cred.key}:nope-nope"))
    with pytest.raises(HiveMindError) as e:
        await wrong.ask("hello")
    assert e.value.kind == "refused" and "nope-nope" not in str(e.value)


async def test_a_v3_only_hub_tells_this_v1_client_why(make_hive: MakeHive) -> None:
    """hivecall's own client speaks v1 only: a hub with v1 off says so, and so does the error."""
    async with make_hive(hivemind_min_protocol=3) as hive:
        cred = await hive.add("script")
        where = f"127.0.0.1:{hive.port}"
        solver = HiveMindSolver(Identity.of(where, f"{cred.key}:{cred.password}"))
        with pytest.raises(HiveMindError) as e:
            await solver.ask("hello")
        assert e.value.kind == "refused"
        assert str(e.value).endswith(f"refused: {V1_OFF}")
        assert cred.password not in str(e.value)


def test_identity_parsing() -> None:
    i = Identity.of("https://hub.example:7000", "key:pa:ss")
    assert (i.host, i.port, i.tls, i.access_key, i.password) == (
        "hub.example",
        7000,
        True,
        "key",
        "pa:ss",
    )
    assert Identity.of("hub.local", "a:b").url.startswith("ws://hub.local:5678/?authorization=")
    for address, secret in (("ftp://x", "a:b"), ("ws://x", "nocolon"), ("ws://x:99999", "a:b")):
        with pytest.raises(ValueError) as e:
            Identity.of(address, secret)
        assert "b" not in str(e.value).split() and "nocolon" not in str(e.value)

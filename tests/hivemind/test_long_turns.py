"""A long turn over HiveMind: the satellite hears that the agent started, then the answer."""

from __future__ import annotations

import time
from pathlib import Path

from hivecall.agents.records import AgentCreate
from hivecall.app import create_app
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.turns.request import TurnRequest
from tests.conftest import OWNER, script
from tests.hivemind.conftest import MakeHive
from tests.hivemind.peer import Peer


async def test_a_long_turn_speaks_started_then_the_answer(make_hive: MakeHive) -> None:
    async with make_hive(voice_ack_s=0.3) as hive:
        worker = await hive.hub.agents.create(
            AgentCreate(
                name="worker", command=script("fake_agent.py") + " --mode work:3:0.3 {message}"
            )
        )
        cred = await hive.add("kitchen", agent=worker.name)
        peer = await Peer.connect(hive.port, cred.key, cred.password)
        await peer.handshake()
        t0 = time.monotonic()
        await peer.utter("check the build")
        first = await peer.recv_bus()
        acked = time.monotonic() - t0
        assert first[0] == "speak" and "worker is on it" in first[1]["utterance"], first
        second = await peer.recv_bus()
        assert second[0] == "speak" and "All 3 parts are fine" in second[1]["utterance"], second
        assert (await peer.recv_bus())[0] == "ovos.utterance.handled"
        assert acked < 0.8  # well before the work (0.9 s) was done
        await peer.aclose()


async def test_a_quick_turn_is_one_speak(make_hive: MakeHive) -> None:
    async with make_hive(voice_ack_s=5) as hive:
        cred = await hive.add("kitchen")
        peer = await Peer.connect(hive.port, cred.key, cred.password)
        await peer.handshake()
        await peer.utter("hello")
        kinds = [(await peer.recv_bus())[0], (await peer.recv_bus())[0]]
        assert kinds == ["speak", "ovos.utterance.handled"]
        await peer.aclose()


async def test_a_remote_hubs_speaks_are_the_local_turns_progress(
    make_hive: MakeHive, tmp_path: Path, environ: dict[str, str], workspace: Path
) -> None:
    async with make_hive(voice_ack_s=0.2) as remote:
        worker = await remote.hub.agents.create(
            AgentCreate(
                name="worker", command=script("fake_agent.py") + " --mode work:2:0.4 {message}"
            )
        )
        cred = await remote.add("downstream", agent=worker.name)
        settings = Settings(
            home=tmp_path / "local", database_url=f"sqlite+aiosqlite:///{tmp_path / 'l.db'}",
            owner_token=OWNER, hivemind_port=0,
        )  # fmt: skip
        app = create_app(settings, environ=environ, workspace=workspace)
        async with app.router.lifespan_context(app):
            local: Hub = app.state.hub
            await local.agents.create(
                AgentCreate(
                    name="remote", runtime="hivemind", base_url=f"http://127.0.0.1:{remote.port}",
                    api_key=f"{cred.key}:{cred.password}",
                )
            )  # fmt: skip
            handle = await local.bridge.start(
                TurnRequest(agent="remote", message="check it", source="test")
            )
            got = [e async for e in handle.events()]
    progress = [e.data["text"] for e in got if e.kind == "progress"]
    assert progress and "worker is on it" in progress[0], got
    assert got[-1].kind == "done" and got[-1].data["status"] == "done"
    assert "All 2 parts are fine" in got[-1].data["text"]

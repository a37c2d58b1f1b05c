"""`hivecall worker`: what it says without credentials, the dashboard's key it shares with the
hub, and the real command registering with LiveKit (the stand-in) and taking a dispatched job."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from livekit import api
from typer.testing import CliRunner

from hivecall.cli import app as cli
from hivecall.cloud.worker import missing, stored_settings
from hivecall.errors import ConfigError
from hivecall.hub import Hub
from hivecall.preferences import SettingsPatch
from hivecall.settings import Settings
from tests.cloud.worker_fixtures import (  # noqa: F401 (fixtures)
    agent_id,
    call_record,
    live_hub,
    owner,
    realtime,
)
from tests.keys import (
    FAKE_OPENAI_KEY,
    LIVEKIT_API_KEY,
    LIVEKIT_API_SECRET,
    REPLACEMENT_OPENAI_KEY,
)
from tests.live import LiveHub
from tests.livekit_standin import worker_proc
from tests.livekit_standin.server import LiveKitStandin
from tests.livekit_standin.worker_proc import WorkerProcess
from tests.standins.realtime import RealtimeStandin

UNSET = {name: None for name in worker_proc.UNSET}  # for CliRunner: None unsets
LIVEKIT_ENV = {
    "LIVEKIT_URL": "ws://127.0.0.1:9",
    "LIVEKIT_API_KEY": LIVEKIT_API_KEY,
    "LIVEKIT_API_SECRET": LIVEKIT_API_SECRET,
}


def worker_says(home: Path, **env: str) -> list[str]:
    result = CliRunner().invoke(cli, ["worker"], env={**UNSET, "HIVECALL_HOME": str(home), **env})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_without_credentials_it_says_what_is_missing_in_one_line(tmp_path: Path) -> None:
    (line,) = worker_says(tmp_path / "home")
    assert line.startswith("hivecall worker not started: cloud calls need LIVEKIT_URL, ")
    assert "LIVEKIT_API_SECRET and an OpenAI key" in line
    (line,) = worker_says(tmp_path / "home", **LIVEKIT_ENV)
    assert line == (
        "hivecall worker not started: cloud calls need an OpenAI key "
        "(OPENAI_API_KEY, or save one in the dashboard's Settings)"
    )
    (line,) = worker_says(tmp_path / "home", OPENAI_API_KEY=FAKE_OPENAI_KEY)
    assert "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET" in line
    assert "OpenAI" not in line
    # Only looking: no database or key file was made in a home that had none.
    assert not (tmp_path / "home").exists()


async def save_in_dashboard(home: Path) -> None:
    hub = await Hub.open(Settings(home=home), environ={})
    try:
        await hub.prefs.update(
            SettingsPatch(openai_api_key=REPLACEMENT_OPENAI_KEY, realtime_voice="cedar")
        )
    finally:
        await hub.aclose()


async def test_the_worker_uses_the_key_saved_in_the_dashboard(tmp_path: Path) -> None:
    base = Settings(home=tmp_path / "home")
    await save_in_dashboard(base.home)
    effective = await stored_settings(base, {})
    assert effective.openai_api_key == REPLACEMENT_OPENAI_KEY
    assert effective.realtime_voice == "cedar"
    assert missing(effective.replace(**{k.lower(): v for k, v in LIVEKIT_ENV.items()})) is None
    # The environment still wins over the dashboard, as in the hub.
    pinned = await stored_settings(
        base.replace(openai_api_key=FAKE_OPENAI_KEY), {"OPENAI_API_KEY": FAKE_OPENAI_KEY}
    )
    assert pinned.openai_api_key == FAKE_OPENAI_KEY


async def test_a_home_without_the_hubs_secret_key_reads_nothing_sealed(tmp_path: Path) -> None:
    base = Settings(home=tmp_path / "home")
    await save_in_dashboard(base.home)
    key = base.home / "secret.key"

    key.write_bytes(b"k" * 32)  # another machine's key: the saved key cannot be opened
    with pytest.raises(ConfigError) as caught:
        await stored_settings(base, {})
    assert "OPENAI_API_KEY" in caught.value.message
    configured = base.replace(openai_api_key=FAKE_OPENAI_KEY)
    assert await stored_settings(configured, {}) == configured

    key.unlink()  # no key at all: nothing is read, and no key is made
    assert await stored_settings(base, {}) == base
    assert not key.exists()


def test_with_a_saved_key_the_command_asks_only_for_livekit(tmp_path: Path) -> None:
    asyncio.run(save_in_dashboard(tmp_path / "home"))
    (line,) = worker_says(tmp_path / "home")
    assert "LIVEKIT_URL" in line and "OpenAI" not in line


@pytest.mark.slow
async def test_the_worker_takes_the_hubs_dispatch_as_its_agent_and_claims_it(
    tmp_path: Path,
    livekit: LiveKitStandin,
    live_hub: LiveHub,  # noqa: F811
    owner: httpx.AsyncClient,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
) -> None:
    """The real `hivecall worker` process: it registers with LiveKit under the agent name, a
    cloud call's dispatch reaches it, it joins as `agent-<id>` named after the agent, claims the
    job from the hub (call: connecting), and, as there is no SFU to join here, reports the call
    failed. SIGTERM stops it cleanly."""
    log = tmp_path / "worker.log"
    process = WorkerProcess.hivecall_worker(
        livekit_url=livekit.ws_url,
        api_key=LIVEKIT_API_KEY,
        api_secret=LIVEKIT_API_SECRET,
        openai_base_url=realtime.base_url,
        hub_url=live_hub.url,
        home=tmp_path / "worker-home",
        log=log,
    )
    with process:
        try:
            (registered,) = await livekit.wait_for(
                lambda: livekit.workers, timeout=30, what="the worker to register"
            )
            assert registered.agent_name == "hivecall"

            echo = await agent_id(owner, "echo")
            r = await owner.post("/api/calls", json={"agent_id": echo, "mode": "cloud"})
            assert r.status_code == 201, r.text
            call = r.json()["call"]
            (dispatch,) = [d for d in livekit.dispatches if d.room == call["livekit"]["room"]]
            job = await livekit.wait_for(
                lambda: (j := livekit.job_for(dispatch.id)) and j.assignment and j,
                timeout=20,
                what="the job assignment",
            )
            assert job.availability is not None
            assert job.availability.participant_identity == f"agent-{echo}"
            assert job.availability.participant_name == "echo"
            accepted = dict(job.availability.participant_attributes)
            assert accepted.items() >= {"hivecall.kind": "agent", "hivecall.agent_id": echo}.items()

            # The job claimed its call, tried the room, and reported that it could not join.
            async def state() -> str:
                shown = await call_record(owner, call["id"])
                return str(shown["call"]["state"])

            await livekit.wait_for(
                lambda: any(
                    a.websocket and a.identity == f"agent-{echo}" for a in livekit.rtc_attempts
                ),
                timeout=20,
                what="the job to try the room",
            )
            for _ in range(200):
                if await state() == "failed":
                    break
                await asyncio.sleep(0.05)
            shown = await call_record(owner, call["id"])
            assert shown["call"]["state"] == "failed"
            assert shown["call"]["error"]["code"] == "room_unreachable"
            assert [ln["text"] for ln in shown["lines"] if ln["kind"] == "phase"] == [
                "connecting",
                "failed",
            ]

            # A job that is not hivecall's is turned down.
            async with api.LiveKitAPI(livekit.url, LIVEKIT_API_KEY, LIVEKIT_API_SECRET) as lk:
                foreign = await lk.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(
                        agent_name="hivecall", room="someone-elses", metadata=json.dumps({"x": 1})
                    )
                )
            # (the worker answers the offer "not available, terminate": no one takes it)
            refused = await livekit.wait_for(
                lambda: (j := livekit.job_for(foreign.id)) and j.answered_at and j,
                timeout=20,
                what="the worker to answer the foreign job",
            )
            assert refused.availability is None and refused.assignment is None
            assert refused.tried == [registered.id]
        finally:
            code = process.stop()
            print(process.log()[-6000:])
    assert code == 0
    text = log.read_text()
    assert "worker for LiveKit agent 'hivecall', hub " in text
    for secret in (LIVEKIT_API_SECRET, FAKE_OPENAI_KEY, "hcw_"):
        assert secret not in text

"""The speech models: found inside their packages, loaded lazily and once; a missing extra or
model makes local calls unavailable with the command that fixes it (and BYOK still works)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivecall.settings import Settings
from hivecall.voice.local import models
from hivecall.voice.local.models import INSTALL, ModelMissing, Models
from tests.conftest import OWNER
from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime.server import RealtimeStandin


def test_the_models_come_from_their_packages() -> None:
    assert (models.whisper_dir() / "model.bin").is_file()
    assert models.piper_voice().suffix == ".onnx" and models.piper_voice().is_file()
    assert models.problem() is None


def test_nothing_loads_until_asked_then_each_model_loads_once() -> None:
    m = Models()
    assert m.loads == 0 and not m.ready
    first = m.transcriber()
    assert m.transcriber() is first
    assert m.loads == 1

    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(m.synthesizer())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in got}) == 1  # four threads at once, one load
    assert m.loads == 2 and m.ready
    assert set(m.load_seconds) == {"stt", "tts"}


def test_the_process_shares_one_set_of_models() -> None:
    assert models.shared() is models.shared()


@pytest.fixture
def without_piper(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "piper" else real(name, *args)

    monkeypatch.setattr(models, "_installed", False)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.usefixtures("without_piper")
def test_a_missing_package_names_the_install_command() -> None:
    reason = models.problem()
    assert reason is not None
    assert "piper" in reason and INSTALL in reason
    with pytest.raises(ModelMissing) as e:
        Models().synthesizer()
    assert e.value.code == "local_unavailable"


def test_a_missing_model_file_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(models, "_installed", False)
    monkeypatch.setattr(models, "piper_voice", lambda: tmp_path / "gone.onnx")
    reason = models.problem()
    assert reason is not None and "gone.onnx" in reason and INSTALL in reason


@pytest.fixture
def realtime() -> Any:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
def settings(tmp_path: Path, database_url: str, realtime: RealtimeStandin) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        openai_base_url=realtime.base_url,
    )


@pytest.mark.usefixtures("without_piper")
async def test_without_the_extra_local_is_unavailable_and_byok_still_works(
    client: httpx.AsyncClient,
) -> None:
    modes = {m["mode"]: m for m in (await client.get("/api/calls/modes")).json()["modes"]}
    assert modes["byok"]["available"] is True
    assert modes["local"]["available"] is False
    assert modes["local"]["code"] == "local_unavailable"
    assert INSTALL in modes["local"]["reason"]

    agent = (await client.get("/api/agents")).json()["agents"][0]
    r = await client.post("/api/calls", json={"agent_id": agent["id"], "mode": "local"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "local_unavailable"
    assert (await client.get("/api/calls")).json()["calls"] == []
    r = await client.post("/api/calls", json={"agent_id": agent["id"]})
    assert r.status_code == 201 and r.json()["call"]["mode"] == "byok"

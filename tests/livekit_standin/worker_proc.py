"""Run an agent worker (a real livekit-agents AgentServer) in a process of its own.

The library starts job processes through a multiprocessing forkserver; running the worker in its
own process keeps that forkserver, its signal handlers and its threads out of the test process.

    with WorkerProcess.agent_app(standin, agent_name="hivecall", report=tmp_path / "r.jsonl",
                                 log=tmp_path / "worker.log") as worker:
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tests.keys import FAKE_OPENAI_KEY
from tests.livekit_standin.agent_app import AGENT_NAME_ENV, REPORT_ENV

if TYPE_CHECKING:
    from tests.livekit_standin.server import LiveKitStandin

REPO = Path(__file__).resolve().parents[2]
# What a `hivecall worker` under test must not inherit from whoever runs the tests.
UNSET = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "OPENAI_API_KEY",
    "OPENAI_REALTIME_KEY",
    "HIVECALL_CONFIG",
    "HIVECALL_DATABASE_URL",
)
REGISTERED = "registered worker"  # livekit-agents' log line once LiveKit registered it


class WorkerProcess:
    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path = REPO
    ) -> None:
        self.argv = list(argv)
        self.env = {**os.environ, **env}
        self.log_path = log
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @classmethod
    def agent_app(
        cls, standin: LiveKitStandin, *, agent_name: str, report: Path, log: Path
    ) -> WorkerProcess:
        """tests/livekit_standin/agent_app.py against `standin`."""
        return cls(
            [sys.executable, "-c", "from tests.livekit_standin.agent_app import main; main()"],
            env={
                "LIVEKIT_URL": standin.ws_url,
                "LIVEKIT_API_KEY": standin.api_key,
                "LIVEKIT_API_SECRET": standin.api_secret,
                AGENT_NAME_ENV: agent_name,
                REPORT_ENV: str(report),
            },
            log=log,
        )

    @classmethod
    def hivecall_worker(
        cls,
        *,
        livekit_url: str,
        api_key: str,
        api_secret: str,
        openai_base_url: str,
        hub_url: str,
        home: Path,
        log: Path,
        health_port: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        """The real `hivecall worker` CLI, with these settings and none of the runner's own
        (`env` adds or overrides variables)."""
        return cls(
            [sys.executable, "-m", "hivecall", "worker", "--health-port", str(health_port)],
            env={
                **{k: "" for k in UNSET},
                "HIVECALL_HOME": str(home),
                "HIVECALL_HOST": "127.0.0.1",
                "LIVEKIT_URL": livekit_url,
                "LIVEKIT_API_KEY": api_key,
                "LIVEKIT_API_SECRET": api_secret,
                "OPENAI_API_KEY": FAKE_OPENAI_KEY,
                "HIVECALL_OPENAI_BASE_URL": openai_base_url,
                "HIVECALL_WORKER_HUB_URL": hub_url,
                "HIVECALL_LOG_LEVEL": "info",
                **(env or {}),
            },
            log=log,
        )

    def start(self) -> WorkerProcess:
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the worker closes its job processes), then SIGKILL after `timeout`."""
        code: int | None = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            code = self.process.returncode
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def drain(self, timeout: float = 15.0) -> None:
        """SIGTERM twice (the first drains: running calls may finish; the second stops them),
        then as `stop`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(3)
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
        self.stop(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def registered(self) -> bool:
        return REGISTERED in self.log()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

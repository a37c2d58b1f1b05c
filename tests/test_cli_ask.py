"""`hivecall ask` on a long turn, as a person at a terminal runs it: progress while the agent
works, the answer on stdout, Ctrl-C stops the agent and everything it started."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import script
from tests.procs import alive
from tests.test_serve_e2e import HIVECALL, cli

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
    }


def add(env: dict[str, str], name: str, mode: str, tmp_path: Path) -> Path:
    log = tmp_path / f"{name}.jsonl"
    cli(
        env, "agents", "add", name,
        "--command", script("fake_agent.py") + f" --mode {mode} {{message}}",
        "--env", f"FAKE_AGENT_LOG={log}", "--env", f"FAKE_AGENT_CHILD_PID={log}.child",
    )  # fmt: skip
    return log


def test_ask_shows_progress_then_the_answer(env: dict[str, str], tmp_path: Path) -> None:
    add(env, "worker", "work:3:0.2", tmp_path)
    done = cli(env, "ask", "worker", "check it")
    assert "All 3 parts are fine: check it" in done.stdout
    progress = [line for line in done.stderr.splitlines() if line.startswith("… ")]
    assert progress[:3] == [f"… step {i} of 3: checking part {i}" for i in (1, 2, 3)], done.stderr


def test_ctrl_c_stops_the_agent_and_its_children(env: dict[str, str], tmp_path: Path) -> None:
    log = add(env, "sleepy", "sleep", tmp_path)
    proc = subprocess.Popen(
        [*HIVECALL, "ask", "sleepy", "take forever"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child_file = Path(f"{log}.child")
    deadline = time.monotonic() + 30
    while not child_file.exists() or not child_file.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    child = int(child_file.read_text())
    agent_pid = json.loads(log.read_text().splitlines()[0])["pid"]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert "Stopped sleepy" in err
    assert not alive(agent_pid) and not alive(child)
    [turn] = json.loads(cli(env, "turns", "list", "--json").stdout)
    assert turn["status"] == "cancelled"

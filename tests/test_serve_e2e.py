"""A real `hivecall serve` subprocess and the CLI, as a new user would run them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import script
from tests.standins.threaded import free_port

HIVECALL = [sys.executable, "-m", "hivecall"]
SECRET = "sk-test-do-not-print-0123456789abcdef"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "OPENAI_API_KEY": SECRET,
        "LIVEKIT_API_SECRET": SECRET + "-lk",
    }


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*HIVECALL, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    return proc


class Server:
    """A `hivecall serve` subprocess (with `args`), started once its plain listener answers."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*HIVECALL, "serve", "--port", str(self.port), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(
            f"hub did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
        )

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        return out, err


@pytest.fixture
def started(env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    server = Server(env, tmp_path)
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.mark.slow
def test_first_start_shows_the_owner_token_once(
    started: Server, env: dict[str, str], tmp_path: Path
) -> None:
    out, err = started.stop()
    assert started.proc.returncode == 0, err
    m = re.search(r"/\?token=(\S+)", out)
    assert m, out
    token = m.group(1)
    assert SECRET not in out + err

    again = Server(env, tmp_path)
    try:
        r = httpx.get(f"{again.url}/api/agents", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert [a["name"] for a in r.json()["agents"]] == ["echo"]
        login = httpx.get(f"{again.url}/", params={"token": token})
        assert login.status_code == 303 and "hivecall_session" in login.cookies
    finally:
        out2, _ = again.stop()
    assert token not in out2 and "token" not in out2


@pytest.mark.slow
def test_cli_and_api_share_the_hub(started: Server, env: dict[str, str], tmp_path: Path) -> None:
    started.stop()
    token = "e2e-owner-token-abcdefghijklmnop"
    env = {**env, "HIVECALL_OWNER_TOKEN": token}
    ws = tmp_path / "repo"
    ws.mkdir()
    cli(
        env,
        "agents",
        "add",
        "helper",
        "--command",
        script("fake_agent.py") + " {message}",
        "--workspace",
        str(ws),
        "--skill",
        "python",
        "--machine",
        "laptop",
    )
    listing = json.loads(cli(env, "agents", "list", "--json").stdout)
    assert {a["name"] for a in listing} == {"echo", "helper"}
    shown = cli(env, "agents", "show", "helper").stdout
    assert "laptop" in shown and "python" in shown

    server = Server(env, tmp_path)
    try:
        r = httpx.post(
            f"{server.url}/api/phone",
            json={"agent_id": "helper", "message": "run the tests"},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["ok"], r.text
        assert "I handled: run the tests" in r.json()["text"]
        # The CLI runs turns too, against the same store, while the hub is up.
        asked = cli(env, "ask", "helper", "what changed?")
        assert "I **handled**: what changed?" in asked.stdout
        turns = json.loads(cli(env, "turns", "list", "--json").stdout)
        assert [t["message"] for t in turns] == ["what changed?", "run the tests"]
    finally:
        server.stop()

    bad = cli(env, "ask", "nobody", "hi", check=False)
    assert bad.returncode == 2 and "no agent called 'nobody'" in bad.stderr
    bad = cli(env, "agents", "add", "x", "--command", "no-such-cli-zz", check=False)
    assert bad.returncode == 2 and "not found" in bad.stderr
    cli(env, "agents", "rm", "helper")
    assert "helper" not in cli(env, "agents", "list").stdout


@pytest.mark.slow
def test_doctor_names_what_is_missing_without_secrets(env: dict[str, str]) -> None:
    out = cli(env, "doctor").stdout
    assert "OpenAI key (BYOK calls)  set" in out
    assert "LIVEKIT_URL, LIVEKIT_API_KEY" in out
    assert SECRET not in out
    bare = {k: v for k, v in env.items() if k not in ("OPENAI_API_KEY", "LIVEKIT_API_SECRET")}
    out = cli(bare, "doctor").stdout
    assert "missing: add it in the dashboard's Settings or set OPENAI_API_KEY" in out
    assert "byok calls" in out and "unavailable: no OpenAI key" in out


@pytest.mark.slow
def test_token_reset_replaces_the_owner_token(
    started: Server, env: dict[str, str], tmp_path: Path
) -> None:
    out, _ = started.stop()
    old = re.search(r"/\?token=(\S+)", out)
    assert old
    new = re.search(r"/\?token=(\S+)", cli(env, "token", "reset").stdout)
    assert new and new.group(1) != old.group(1)
    server = Server(env, tmp_path)
    try:
        auth = lambda t: {"authorization": f"Bearer {t}"}  # noqa: E731
        assert httpx.get(f"{server.url}/api/agents", headers=auth(old.group(1))).status_code == 401
        assert httpx.get(f"{server.url}/api/agents", headers=auth(new.group(1))).status_code == 200
    finally:
        server.stop()


def test_environment_is_not_mutated() -> None:
    # Settings are read once and passed down: importing and loading writes nothing to os.environ.
    before = dict(os.environ)
    from hivecall.settings import load

    load(before)
    assert dict(os.environ) == before

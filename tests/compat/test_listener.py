"""The separate compat listener: the two APIs' paths only, and the owner's no-key opt-in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from hivecall.app import create_app
from hivecall.errors import ConfigError
from hivecall.settings import Settings
from tests.compat.conftest import Served, add_agent, turns
from tests.conftest import OWNER, OWNER_HEADERS
from tests.standins.threaded import free_port


@pytest.fixture
def compat_settings() -> dict[str, Any]:
    return {"compat_port": free_port(), "compat_open_agents": "echo, kitchen"}


@pytest.fixture
def listener_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.compat_port}"


@contextlib.asynccontextmanager
async def anonymous(url: str) -> AsyncIterator[ollama.AsyncClient]:
    c = ollama.AsyncClient(host=url)
    try:
        yield c
    finally:
        await c.close()


async def test_without_a_key_only_the_named_agents_answer(
    served: Served, owner: httpx.AsyncClient, listener_url: str
) -> None:
    await add_agent(owner, "private")
    async with anonymous(listener_url) as c:
        assert [m.model for m in (await c.list()).models] == ["echo:latest"]
        done = await c.chat(
            model="echo:latest", messages=[{"role": "user", "content": "lights"}], stream=False
        )
        assert "lights" in (done.message.content or "")
        with pytest.raises(ollama.ResponseError) as caught:
            await c.chat(model="private", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 404
    # An OpenAI client must send some key; one the hub does not know is no key at all.
    async with openai.AsyncOpenAI(
        base_url=f"{listener_url}/v1", api_key="none", max_retries=0
    ) as oa:
        assert [m.id async for m in oa.models.list()] == ["echo"]
        with pytest.raises(openai.NotFoundError):
            await oa.chat.completions.create(
                model="private", messages=[{"role": "user", "content": "hi"}]
            )
    # A real key still reaches what it may reach, on the listener too.
    async with openai.AsyncOpenAI(
        base_url=f"{listener_url}/v1", api_key=OWNER, max_retries=0
    ) as oa:
        assert [m.id async for m in oa.models.list()] == ["echo", "private"]
        done2 = await oa.chat.completions.create(
            model="private", messages=[{"role": "user", "content": "hello"}]
        )
        assert "hello" in (done2.choices[0].message.content or "")
    # The main port never opens anything without a key.
    async with httpx.AsyncClient(base_url=served.url) as raw:
        assert (await raw.get("/api/tags")).status_code == 401
    recorded = {(t["message"], t["source"]) for t in await turns(owner)}
    assert recorded == {("lights", "ollama"), ("hello", "openai")}


async def test_the_listener_serves_only_the_two_apis(listener_url: str, served: Served) -> None:
    async with httpx.AsyncClient(base_url=listener_url) as raw:
        r = await raw.get("/")
        assert r.status_code == 200 and r.text == "Ollama is running"
        assert (await raw.head("/")).status_code == 200
        r = await raw.get("/api/agents", headers=OWNER_HEADERS)
        assert r.status_code == 404 and r.json() == {"error": "no such route"}
        r = await raw.get("/v1/nothing")
        assert r.status_code == 404
        assert (
            r.json()["error"] | {"code": "not_found", "type": "invalid_request_error"}
            == (r.json()["error"])
        )
        r = await raw.get("/v1/chat/completions")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        assert (await raw.get("/api/version")).status_code == 200


class TestWithoutOpenAgents:
    @pytest.fixture
    def compat_settings(self) -> dict[str, Any]:
        return {"compat_port": free_port()}

    async def test_every_request_needs_a_key(self, served: Served, listener_url: str) -> None:
        async with anonymous(listener_url) as c:
            with pytest.raises(ollama.ResponseError) as caught:
                await c.list()
        assert caught.value.status_code == 401
        async with openai.AsyncOpenAI(
            base_url=f"{listener_url}/v1", api_key="none", max_retries=0
        ) as oa:
            with pytest.raises(openai.AuthenticationError):
                await oa.models.list()


def test_settings_that_make_no_sense_are_refused(tmp_path: Path) -> None:
    base = Settings(home=tmp_path, owner_token=OWNER)
    for changes, says in [
        ({"compat_open_agents": "echo"}, "set compat_port too"),
        ({"compat_port": 8765}, "must differ from port"),
        ({"compat_port": 70000}, "between 0 and 65535"),
        ({"compat_port": 11434, "compat_open_agents": "echo,not ok"}, "is not an agent name"),
    ]:
        with pytest.raises(ConfigError, match=says):
            create_app(base.replace(**changes), environ={})


# -- `hivecall serve`, as a person would run it -----------------------------------------------


def _hivecall(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hivecall", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def serve_env(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    yield {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "HIVECALL_DATABASE_URL": database_url,
        "HIVECALL_OWNER_TOKEN": OWNER,
    }


def _wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"hivecall serve did not come up: {proc.communicate()[1]}")


@pytest.mark.slow
async def test_serve_warns_loudly_about_open_agents(serve_env: dict[str, str]) -> None:
    port, compat = free_port(), free_port()
    env = serve_env | {"HIVECALL_COMPAT_PORT": str(compat), "HIVECALL_COMPAT_OPEN_AGENTS": "echo"}
    proc = _hivecall("serve", "--port", str(port), env=env)
    try:
        await asyncio.to_thread(_wait_up, f"http://127.0.0.1:{compat}/", proc)
        c = ollama.Client(host=f"http://127.0.0.1:{compat}")
        try:
            done = c.chat(model="echo", messages=[{"role": "user", "content": "ping"}])
        finally:
            c.close()
        assert "ping" in (done.message.content or "")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, err
    assert f"WARNING: http://127.0.0.1:{compat} answers WITHOUT an API key for: echo" in err
    assert "compat listener serves agents without an API key" in err  # and in the log
    assert OWNER not in err


@pytest.mark.slow
async def test_serve_refuses_open_agents_without_the_listener(serve_env: dict[str, str]) -> None:
    env = serve_env | {"HIVECALL_COMPAT_OPEN_AGENTS": "echo"}
    proc = _hivecall("serve", "--port", str(free_port()), env=env)
    _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 2
    assert "compat_open_agents only applies to the compat listener" in err

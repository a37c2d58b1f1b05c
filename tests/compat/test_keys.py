"""`hivecall keys …`: keys are shown once, stored hashed, listed without values, revoked by name."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hivecall.auth import Tokens, hash_token
from hivecall.store import Store
from hivecall.store.models import Token
from tests.compat.conftest import Served, make_key


async def hivecall(
    tmp_path: Path, database_url: str, *args: str, status: int = 0
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "HIVECALL_DATABASE_URL": database_url,
    }
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hivecall", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == status, proc.stderr
    return proc


@pytest.mark.slow
async def test_keys_from_the_command_line(tmp_path: Path, database_url: str) -> None:
    await hivecall(tmp_path, database_url, "agents", "add", "kitchen", "--runtime", "echo")
    made = await hivecall(
        tmp_path, database_url, "keys", "create", "--name", "ha", "--agent", "kitchen"
    )
    [value] = re.findall(r"hca_[A-Za-z0-9_-]{40,}", made.stdout)
    assert "shown once" in made.stdout and "kitchen" in made.stdout
    await hivecall(tmp_path, database_url, "keys", "create", "--name", "webui")

    listed = await hivecall(tmp_path, database_url, "keys", "list", "--json")
    keys = json.loads(listed.stdout)
    assert [(k["name"], k["agent"]) for k in keys] == [("ha", "kitchen"), ("webui", None)]
    assert value not in listed.stdout
    assert value not in (await hivecall(tmp_path, database_url, "keys", "list")).stdout

    store = Store(url=database_url)
    try:
        async with store.session() as s:
            row = await s.scalar(select(Token).where(Token.name == "ha"))
        assert row is not None and row.token_hash == hash_token(value)
        assert row.kind == "api" and row.scopes == ["compat"] and row.subject is not None
        principal = await Tokens(store=store).verify(value)
        assert principal is not None and principal.subject == row.subject

        taken = await hivecall(tmp_path, database_url, "keys", "create", "--name", "ha", status=2)
        assert "a key called 'ha' exists" in taken.stderr
        bad = await hivecall(
            tmp_path, database_url, "keys", "create", "--name", "x", "--agent", "nobody", status=2
        )
        assert "no agent called 'nobody'" in bad.stderr
        bad = await hivecall(tmp_path, database_url, "keys", "create", "--name", "no way", status=2)
        assert "name:" in bad.stderr

        assert (
            "revoked ha" in (await hivecall(tmp_path, database_url, "keys", "revoke", "ha")).stdout
        )
        assert await Tokens(store=store).verify(value) is None
        gone = await hivecall(tmp_path, database_url, "keys", "revoke", "ha", status=2)
        assert "no key called 'ha'" in gone.stderr
        listed = await hivecall(tmp_path, database_url, "keys", "list", "--json")
        assert [k["name"] for k in json.loads(listed.stdout)] == ["webui"]
    finally:
        await store.aclose()


async def test_the_owner_manages_keys_over_http(served: Served, owner: httpx.AsyncClient) -> None:
    value = await make_key(owner, "webui")
    listed = (await owner.get("/api/keys")).json()["keys"]
    assert [k["name"] for k in listed] == ["webui"] and value not in json.dumps(listed)
    r = await owner.post("/api/keys", json={"name": "webui"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "key_exists"
    r = await owner.post("/api/keys", json={"name": "x", "agent": "nobody"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "agent_not_found"
    # A key cannot manage keys: only the owner can.
    r = await owner.get("/api/keys", headers={"authorization": f"Bearer {value}"})
    assert r.status_code == 403
    assert (await owner.delete("/api/keys/webui")).status_code == 200
    assert (await owner.get("/api/keys")).json()["keys"] == []

"""Text with NUL characters (U+0000), which PostgreSQL's text columns cannot hold.

Found by tests/test_schemathesis.py on PostgreSQL: a NUL anywhere a request's text reaches a
query (a body field, a path or query parameter) is a 500 there, and an agent's answer with a
NUL left its turn `running` forever (the caller heard `done`). SQLite stores them. The hub
now drops NUL from JSON bodies (as the routes' name cleaning already did), refuses it in an
address (400), and strips it from what reaches the bridge (runtime output, HiveMind and voice
input), on both stores alike.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

NUL = "a\x00b"


async def test_nul_in_a_request_is_never_a_server_error(client: httpx.AsyncClient) -> None:
    for method, path, body in [
        ("POST", "/api/phone", {"agent_id": "echo", "message": NUL}),
        ("POST", "/api/phone", {"agent_id": NUL, "message": "hi"}),
        ("POST", "/api/agents", {"name": "n", "runtime": "echo", "description": NUL}),
        ("POST", "/api/generate", {"model": NUL, "prompt": "hi", "stream": False}),
        ("GET", "/api/agents/a%00b", None),
        ("GET", "/api/turns?session_id=a%00b", None),
        ("GET", "/api/calls/a%00b", None),
        ("GET", "/api/pairing/a%00b", None),
    ]:
        r = await client.request(method, path, json=body)
        assert r.status_code < 500, (method, path, r.text)
        if body is None:  # an address with NUL is refused at the boundary
            assert r.status_code == 400, (method, path, r.text)


async def test_an_answer_with_nul_is_recorded(client: httpx.AsyncClient, workspace: Path) -> None:
    answer = "import sys; sys.stdout.write('a\\x00b ' + sys.argv[1])"
    r = await client.post(
        "/api/agents",
        json={
            "name": "nul",
            "command": [sys.executable, "-c", answer, "{message}"],
            "workspace": str(workspace),
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/phone", json={"agent_id": "nul", "message": "hi"})
    assert r.json()["status"] == "done"
    (turn,) = (await client.get("/api/turns")).json()["turns"]
    assert turn["status"] == "done"


async def test_nul_is_dropped_from_what_is_stored(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/agents", json={"name": "n", "runtime": "echo", "description": NUL})
    assert r.status_code == 201, r.text
    assert (await client.get("/api/agents/n")).json()["agent"]["description"] == "ab"

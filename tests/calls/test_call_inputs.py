"""Hostile call input: an SDP offer far over its limit, and event batches that fail halfway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from hivecall.calls.local import MAX_OFFER_BYTES

SDP = {"content-type": "application/sdp"}
CHUNK = 16 * 1024


async def byok_call(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "byok"})
    assert r.status_code == 201, r.text
    call: dict[str, Any] = r.json()["call"]
    return call


async def test_an_oversized_offer_is_refused_before_it_is_read_whole(
    client: httpx.AsyncClient,
) -> None:
    call = await byok_call(client)
    url = f"/api/calls/{call['id']}/local/offer"
    sent = 0

    async def flood() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(640):  # 10 MiB, streamed without a Content-Length
            sent += 1
            yield b"a" * CHUNK

    r = await client.post(url, content=flood(), headers=SDP)
    assert r.status_code == 413
    assert r.json() == {
        "error": {
            "code": "payload_too_large",
            "message": f"the offer is larger than {MAX_OFFER_BYTES} bytes",
        }
    }
    # Reading stopped at the first chunk past the limit.
    assert sent == MAX_OFFER_BYTES // CHUNK + 1

    # A declared length over the limit is refused without reading anything.
    r = await client.post(url, content=b"v=0", headers={**SDP, "content-length": "10000000"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_a_batch_that_fails_halfway_writes_nothing(client: httpx.AsyncClient) -> None:
    call = await byok_call(client)
    url = f"/api/calls/{call['id']}"

    async def report(*events: dict[str, Any]) -> httpx.Response:
        return await client.post(f"{url}/events", json={"events": list(events)})

    # Its own phases conflict: ended, then failed.
    r = await report(
        {"type": "phase", "phase": "talking"},
        {"type": "user", "text": "hello"},
        {"type": "phase", "phase": "ended"},
        {"type": "phase", "phase": "failed"},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_finished"
    detail = (await client.get(url)).json()
    assert detail["call"]["state"] == "ringing" and detail["lines"] == []

    # A finished call still takes late lines, but not with a phase it cannot reach.
    assert (await client.post(f"{url}/end")).status_code == 200
    r = await report({"type": "agent", "text": "Bye."}, {"type": "phase", "phase": "failed"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_finished"
    lines = [(ln["kind"], ln["text"]) for ln in (await client.get(url)).json()["lines"]]
    assert lines == [("phase", "ended")]
    # Sent again without the bad phase, the line is kept once.
    assert (await report({"type": "agent", "text": "Bye."})).status_code == 200
    lines = [(ln["kind"], ln["text"]) for ln in (await client.get(url)).json()["lines"]]
    assert lines == [("phase", "ended"), ("agent", "Bye.")]

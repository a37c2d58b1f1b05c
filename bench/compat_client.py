"""A lean HTTP/1.1 load client for the compat benchmark: one keep-alive connection per worker.

The compat benchmark measures servers that answer thousands of requests a second on the same
two cores as the load generator. httpx spends about 0.7 ms of CPU per request, which at those
rates would measure the client, not the server; this client sends pre-encoded requests over a
bare asyncio protocol and parses only the status line, `content-length` and the JSON body
(about 20 µs a request). Both servers in a comparison get the same client.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness import BenchError


class Connection(asyncio.Protocol):
    """One keep-alive connection; `request()` sends one request and waits for its response.

    Like any HTTP client, it reconnects when the server closed the connection while it was
    idle (uvicorn closes keep-alive connections idle for 5 s).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self._lost: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        conn = cls(host, port)
        await conn._connect()
        return conn

    async def _connect(self) -> None:
        self._buf.clear()
        self._lost = None
        await asyncio.get_running_loop().create_connection(lambda: self, self.host, self.port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionError(f"port {self.port} closed the connection")
        self._transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self._lost)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None or self._waiter.done():
            return
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buf[:end]).lower()
        start = head.find(b"\ncontent-length:")
        if start < 0:
            self._waiter.set_exception(BenchError("a response without content-length"))
            return
        stop = head.find(b"\r", start + 16)
        length = int(head[start + 16 : stop if stop > 0 else None])
        total = end + 4 + length
        if len(self._buf) < total:
            return
        body = bytes(self._buf[end + 4 : total])
        del self._buf[:total]
        self._waiter.set_result((int(head[9:12]), body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self._lost is not None or self._transport is None:
            await self._connect()
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def post(host: str, port: int, path: str, body: Any, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 POST with a JSON body, encoded once and sent many times."""
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


Check = Callable[[int, bytes], None]


async def closed_loop(
    conns: Sequence[Connection], raw: bytes, check: Check, *, count: int
) -> tuple[list[float], float]:
    """`count` requests from one worker per connection, each sent as soon as the last answered.

    Returns per-request latencies in seconds and the wall time of the batch.
    """
    latencies: list[float] = []
    todo = iter(range(count))

    async def worker(conn: Connection) -> None:
        for _ in todo:
            t0 = time.perf_counter()
            status, body = await conn.request(raw)
            latencies.append(time.perf_counter() - t0)
            check(status, body)

    # The client's own garbage collections would stall every request in flight and show up
    # as the servers' latency: collect before the batch, not during it.
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            for conn in conns[:count]:
                tg.create_task(worker(conn))
    except ExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, BenchError):
            raise first from None
        raise BenchError(f"a request failed: {first!r}") from first
    finally:
        gc.enable()
    return latencies, time.perf_counter() - started


async def connections(host: str, port: int, count: int) -> list[Connection]:
    return [await Connection.open(host, port) for _ in range(count)]

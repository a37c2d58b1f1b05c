"""Serve an ASGI app with uvicorn in a thread of its own, on a free port of 127.0.0.1.

The app runs on the thread's own event loop, so the code under test reaches it over a real
socket. `run()` hands a coroutine to that loop (for objects that belong to it, such as the
hub's database engine or an aiortc peer connection) and awaits the result from the caller's.
Every test that serves an app in-process uses this; `free_port()` is for a server another
process starts (or for a port nothing listens on).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

import uvicorn

T = TypeVar("T")


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (bound, then released).

    For a server the test does not run itself (a `hivecall serve`, the hub's second listener),
    or for an address where nothing listens. A server run here binds with `ServerThread.bind()`,
    which keeps the socket and so cannot lose the port to someone else.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    def __init__(
        self,
        app: Any,
        *,
        name: str,
        lifespan: Literal["on", "off"] = "off",
        ws: Literal["none", "auto", "wsproto", "websockets", "websockets-sansio"] = "none",
        port: int = 0,
    ) -> None:
        self.app = app
        self.name = name
        self.port = port
        self._wanted = port  # 0: any free port; else this one again (a restarted server)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lifespan = lifespan
        self._ws = ws
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bind(self) -> int:
        """Take the port now (before `start`), e.g. to put it in the app's settings."""
        if self._sock is None:
            # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say TCP,
            # and without it every keep-alive request waits ~40 ms for a delayed ACK.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._wanted))
            self._sock = sock
            self.port = sock.getsockname()[1]
        return self.port

    def start(self, timeout: float = 20) -> ServerThread:
        self.bind()
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan=self._lifespan,
            http="h11",
            ws=self._ws,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                error = self._error
                self.close()
                raise RuntimeError(f"{self.name} did not start") from error
            time.sleep(0.01)
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            self._error = e
            raise

    async def _serve(self) -> None:
        assert self._server is not None and self._sock is not None
        self.loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the server's loop; await its result on the caller's loop."""
        if self.loop is None:
            coro.close()
            raise RuntimeError(f"{self.name} is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call_soon(self, fn: Any, *args: Any) -> None:
        """Call a plain function on the server's loop (thread-safe, does not wait)."""
        if self.loop is None:
            raise RuntimeError(f"{self.name} is not running")
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not stop")
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None
        self.loop = None

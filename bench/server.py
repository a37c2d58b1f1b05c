"""The hub as the benchmarks see it: the real app, plus a bare echo route on the same server.

`POST /bench/echo` returns its JSON body with no auth, no store and no bridge, so the difference
between it and `POST /api/phone` is what the hub adds (routing, Starlette, uvicorn and the
loopback socket are common to both).

Run by bench/run.py in a subprocess:

    python bench/server.py --home DIR --port PORT --owner-token TOKEN
                           [--database-url URL] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import signal
import sys
import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hivecall.app import create_app, freeze_startup_heap
from hivecall.logs import setup_logging
from hivecall.settings import Settings, load


async def echo(request: Request) -> Response:
    return JSONResponse(await request.json())


def build(settings: Settings, workspace: Path) -> Starlette:
    # Agent processes get a PATH without the user's coding CLIs (the echo agent needs none).
    environ = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    app = create_app(settings, environ=environ, workspace=workspace)
    app.router.routes.insert(0, Route("/bench/echo", echo, methods=["POST"]))
    return app


def exit_with_parent(parent: int) -> None:
    """Stop (gracefully, as on Ctrl-C) if the runner dies without stopping us."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--owner-token", required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the server here")
    args = parser.parse_args()

    # The environment may add settings (bench/run.py passes e.g. an OpenAI base URL).
    settings = load(
        os.environ,
        home=args.home,
        host="127.0.0.1",
        port=args.port,
        database_url=args.database_url or None,
        owner_token=args.owner_token,
        log_level="warning",
    )
    workspace = args.home / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    setup_logging(settings.log_level)
    exit_with_parent(os.getppid())
    app = build(settings, workspace)
    freeze_startup_heap()  # as `hivecall serve` does
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()

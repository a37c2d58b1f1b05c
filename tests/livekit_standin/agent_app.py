"""A real livekit-agents AgentServer for the stand-in's tests, run in a process of its own.

    python -c "from tests.livekit_standin.agent_app import main; main()"

It registers with an explicit agent name, accepts each job with an identity, name and attributes
taken from the dispatch metadata (as the hivecall worker does), and its entrypoint (run by the
library in a forkserver job process) appends what it saw to a JSON-lines report file, then tries
`ctx.connect()` (the stand-in refuses /rtc) and reports how that ended.

Environment: LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET (read by AgentServer),
STANDIN_AGENT_NAME, STANDIN_REPORT (the report file). SIGTERM/SIGINT close the server cleanly.
The entrypoint and request handler live here, in an importable module, because the job process
imports them by name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from typing import Any

from livekit.agents import AgentServer, JobContext, JobRequest

AGENT_NAME_ENV = "STANDIN_AGENT_NAME"
REPORT_ENV = "STANDIN_REPORT"


def report(event: str, **fields: Any) -> None:
    """Append one JSON line to the report file (each write is a single O_APPEND write)."""
    line = json.dumps({"event": event, "pid": os.getpid(), "at": time.time(), **fields}) + "\n"
    with open(os.environ[REPORT_ENV], "a", encoding="utf-8") as f:
        f.write(line)


def accept_arguments(metadata: str) -> dict[str, Any]:
    """identity/name/attributes for a job, from the dispatch metadata (the hivecall contract)."""
    meta = json.loads(metadata or "{}")
    agent_id = str(meta.get("agent_id", "unknown"))
    return {
        "identity": f"agent-{agent_id}",
        "name": str(meta.get("agent_name", "")),
        "attributes": {"hivecall.kind": "agent", "hivecall.agent_id": agent_id},
    }


async def on_request(request: JobRequest) -> None:
    arguments = accept_arguments(request.job.metadata)
    report("request", job_id=request.id, room=request.room.name, **arguments)
    await request.accept(**arguments)


async def entrypoint(ctx: JobContext) -> None:
    claims = ctx.token_claims()
    report(
        "job",
        job_id=ctx.job.id,
        dispatch_id=ctx.job.dispatch_id,
        room=ctx.job.room.name,
        agent_name=ctx.job.agent_name,
        metadata=ctx.job.metadata,
        identity=claims.identity,
        name=claims.name,
        kind=claims.kind,
        attributes=claims.attributes or {},
    )
    try:
        await ctx.connect()
    except Exception as e:
        report("connect_failed", job_id=ctx.job.id, error=str(e), type=type(e).__name__)
        ctx.shutdown(reason="no SFU in the stand-in")
        return
    report("connected", job_id=ctx.job.id)
    ctx.shutdown(reason="connected")


def build_server() -> AgentServer:
    server = AgentServer(
        num_idle_processes=1,
        port=0,  # the health server: any free port
        host="127.0.0.1",
        load_fnc=lambda: 0.0,  # the machine's CPU load must not make the worker "full"
        shutdown_process_timeout=5.0,
    )
    server.rtc_session(entrypoint, agent_name=os.environ[AGENT_NAME_ENV], on_request=on_request)
    return server


async def serve() -> None:
    server = build_server()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    @server.on("worker_registered")
    def _registered(worker_id: str, _info: Any) -> None:
        report("registered", worker_id=worker_id)

    running = asyncio.create_task(server.run(devmode=False))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
    await server.aclose()
    stopping.cancel()
    await asyncio.gather(running, stopping, return_exceptions=True)
    report("closed")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve())


if __name__ == "__main__":
    main()

"""`hivecall worker`: the LiveKit Agents worker that speaks for hivecall's agents in cloud calls.

The hub creates a room per cloud call and dispatches this worker (explicit dispatch, agent name
`livekit_agent_name`) once per agent, with metadata naming the call and the agent
(calls/cloud/wire.py). This module is the worker process: it registers with LiveKit, accepts
hivecall's jobs as `agent-<agent id>`, named after the agent (`on_request`), rejects anything
else, and drains on a signal. Each job runs in a process of its own (job.py).

Job processes start from a forkserver that imports job.py: importing it does nothing but define
things. Settings reach the job through the pickled entrypoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Mapping

from livekit.agents import AgentServer, JobRequest

from hivecall.calls.cloud.livekit import missing_settings
from hivecall.calls.cloud.wire import AGENT_ID, KIND, JobMeta, room_name
from hivecall.cloud.job import entrypoint
from hivecall.cloud.room import agent_identity
from hivecall.errors import ConfigError, HivecallError
from hivecall.settings import Settings

log = logging.getLogger(__name__)

HEALTH_PORT = 8081  # the worker's health endpoint (livekit-agents' default)
MAX_JOBS = 10  # agents in calls one worker serves at once; LiveKit offers it no more


def job_load(server: AgentServer) -> float:
    """The worker's load, as LiveKit is told it: its jobs' share of MAX_JOBS (full at 1).

    Not livekit-agents' default, the whole machine's CPU (full at 70 %): the worker shares its
    machine with the hub, whose coding agents and speech models keep the CPU busy for minutes,
    and a worker that counts them marks itself full and turns every call away (a job no worker
    takes is not offered again). A job is a relay between two network peers, light on CPU."""
    return len(server.active_jobs) / MAX_JOBS


class WorkerFailed(HivecallError):
    """The worker could not keep running (e.g. LiveKit refused or never answered)."""

    code = "worker_failed"


def missing(settings: Settings) -> str | None:
    """What the worker lacks to run, as one line; None when it has everything."""
    lacks = missing_settings(settings)
    if not settings.openai_api_key:
        lacks.append("an OpenAI key (OPENAI_API_KEY, or save one in the dashboard's Settings)")
    if not lacks:
        return None
    listed = lacks[0] if len(lacks) == 1 else f"{', '.join(lacks[:-1])} and {lacks[-1]}"
    return f"hivecall worker not started: cloud calls need {listed}"


async def stored_settings(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The settings with the dashboard's saved changes (the OpenAI key, model, voice), as the
    hub sharing this home or database runs with. Without a store, or without the home's
    secret.key to open its sealed values, there is nothing to add."""
    from sqlalchemy.exc import SQLAlchemyError

    from hivecall.preferences import Preferences
    from hivecall.secretbox import KEY_FILE, SecretBox
    from hivecall.settings import pinned
    from hivecall.store import Store

    if not settings.database_url and not (settings.home / "hivecall.db").exists():
        return settings
    if not (settings.home / KEY_FILE).exists():
        log.info("no hub secret.key in this home: the dashboard's settings are not read")
        return settings
    store = Store(url=settings.resolved_database_url)
    try:
        prefs = Preferences(
            store=store, box=SecretBox.open(settings.home), base=settings, pinned=pinned(environ)
        )
        return await prefs.load()
    except SQLAlchemyError:
        log.warning("the hub's database has no saved settings yet; using the configured ones")
        return settings
    except ConfigError as e:
        if not settings.openai_api_key:
            raise ConfigError(
                f"{e.message}; set OPENAI_API_KEY for the worker, or give it the hub's home"
            ) from e
        log.warning("the dashboard's saved settings cannot be opened here; using the configured")
        return settings
    finally:
        await store.aclose()


def build_server(settings: Settings, *, port: int = HEALTH_PORT) -> AgentServer:
    """An AgentServer for hivecall's explicit dispatch (nothing is started yet)."""
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        host=settings.host,
        port=port,
        num_idle_processes=1,
        load_fnc=job_load,
        load_threshold=1.0,
        preload_modules=[entrypoint.__module__],  # loaded once, in the forkserver
        log_level="DEBUG" if settings.log_level.lower() == "debug" else "INFO",
    )
    server.rtc_session(
        functools.partial(entrypoint, settings=settings),
        agent_name=settings.livekit_agent_name,
        on_request=on_request,
    )
    return server


def run(settings: Settings, *, port: int = HEALTH_PORT) -> None:
    """Run the worker until SIGINT/SIGTERM, then let running calls finish (a second signal
    stops them at once)."""
    # livekit-agents logs tool arguments and transcripts at DEBUG: keep it above that.
    logging.getLogger("livekit").setLevel(logging.INFO)
    asyncio.run(serve(build_server(settings, port=port)))


async def serve(server: AgentServer, *, stop: asyncio.Event | None = None) -> None:
    """Run `server` until `stop` is set or SIGINT/SIGTERM arrives, then drain it: running calls
    may finish, new jobs go to other workers. A second signal stops the calls at once."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    main = asyncio.create_task(server.run(devmode=False), name="hivecall-worker")
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if main.done() and not stop.is_set():
            if (e := main.exception()) is not None:
                raise WorkerFailed(f"the worker stopped: {e}") from e
            return
        log.info("worker stopping: running calls may finish (signal again to stop them)")
        draining = asyncio.create_task(server.drain())
        hurried = asyncio.create_task(hurry.wait())
        await asyncio.wait({draining, hurried}, return_when=asyncio.FIRST_COMPLETED)
        for task in (draining, hurried):
            task.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopped.cancel()
        await server.aclose()
        main.cancel()
        # Once stopping, how the connection loop ended (cancelled, or still retrying) is moot.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await main


async def on_request(req: JobRequest) -> None:
    """Accept hivecall's jobs as the agent they name; reject anything else."""
    meta = JobMeta.parse(req.job.metadata)
    if meta is None or req.room.name != room_name(meta.call_id):
        log.warning("rejected a job that is not hivecall's", extra={"job_id": req.id})
        await req.reject()
        return
    await req.accept(
        name=meta.agent_name,
        identity=agent_identity(meta.agent_id),
        attributes={KIND: "agent", AGENT_ID: meta.agent_id},
    )

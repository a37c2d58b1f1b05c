"""`hivecall worker`: the cloud-call worker, which joins LiveKit rooms as the calls' agents."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from hivecall import __version__
from hivecall.cli.common import fail, settings_of
from hivecall.errors import HivecallError


def worker(
    ctx: typer.Context,
    health_port: Annotated[
        int, typer.Option(help="Port of the worker's health endpoint (0: any free port).")
    ] = 8081,
) -> None:
    """Run the cloud-call worker: it joins LiveKit rooms as the agents of cloud calls."""
    from hivecall.cloud.worker import missing, run, stored_settings

    try:
        settings = asyncio.run(stored_settings(settings_of(ctx), os.environ))
    except HivecallError as e:
        fail(e.message, 2)
    if problem := missing(settings):
        typer.echo(problem, err=True)
        raise typer.Exit(0)
    typer.echo(
        f"hivecall {__version__} worker for LiveKit agent {settings.livekit_agent_name!r}, "
        f"hub {settings.worker_hub_url or settings.resolved_public_url}",
        err=True,
    )
    try:
        run(settings, port=health_port)
    except HivecallError as e:
        fail(e.message)

"""`hivecall serve`: run the hub (dashboard, API and HiveMind listener) until interrupted."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from hivecall import __version__
from hivecall.cli.common import fail, settings_of
from hivecall.errors import HivecallError


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    hivemind_port: Annotated[
        int | None, typer.Option(help="HiveMind listener port (0: no HiveMind listener).")
    ] = None,
    https: Annotated[
        bool | None,
        typer.Option(
            "--https/--no-https",
            help="HTTPS on the network addresses, for phones (loopback stays plain HTTP).",
        ),
    ] = None,
) -> None:
    """Run the hub (dashboard, API and HiveMind listener) until interrupted."""
    from hivecall.app import create_app, freeze_startup_heap
    from hivecall.boundary import proxy_options
    from hivecall.listening import phone_url
    from hivecall.serving import prepare
    from hivecall.serving import serve as run_listeners

    chosen = {"host": host, "port": port, "hivemind_port": hivemind_port, "https": https}
    settings = settings_of(ctx).replace(**{k: v for k, v in chosen.items() if v is not None})
    try:
        prepared = prepare(settings)
        settings = prepared.settings
        application = create_app(settings, environ=dict(os.environ), serve_hivemind=True)
    except HivecallError as e:
        fail(e.message, 2)
    typer.echo(f"hivecall {__version__} serving on {settings.resolved_public_url}", err=True)
    if prepared.cert is not None:
        lan = prepared.listeners.tls
        typer.echo(
            f"HTTPS for phones on {phone_url(settings, lan)}"
            + (f" (CA certificate: {phone_url(settings, lan)}/ca.crt)" if prepared.cert.ca else ""),
            err=True,
        )
    if warning := prepared.listeners.warning:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    if settings.compat_port:
        compat_host = settings.compat_host or settings.host
        typer.echo(
            f"OpenAI/Ollama-compatible API also on {compat_host}:{settings.compat_port}", err=True
        )
    if settings.hivemind_port:
        hm_host = settings.hivemind_host or settings.host
        typer.echo(f"HiveMind listener on {hm_host}:{settings.hivemind_port}", err=True)
    freeze_startup_heap()
    try:
        # X-Forwarded-* only from trusted_proxies
        run_listeners(application, prepared, proxy_options(settings))
    except HivecallError as e:
        fail(e.message, 2)

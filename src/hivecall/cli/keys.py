"""`hivecall keys …`: API keys for the OpenAI- and Ollama-compatible API (hivecall/compat/)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from hivecall.cli.common import fail_invalid, settings_of, with_hub
from hivecall.hub import Hub

app = typer.Typer(help="API keys for the OpenAI- and Ollama-compatible API.", no_args_is_help=True)


@app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for the key (what uses it, e.g. ha).")],
    agent: Annotated[
        str | None, typer.Option(help="Limit the key to this agent (default: every agent).")
    ] = None,
) -> None:
    """Make an API key and print it once (only its hash is stored)."""
    from hivecall.compat.keys import KeyCreate, KeyInfo, Keys

    try:
        spec = KeyCreate.model_validate({"name": name, "agent": agent})
    except ValidationError as e:
        fail_invalid(e)

    async def work(hub: Hub) -> tuple[str, KeyInfo]:
        return await Keys(hub).create(spec)

    value, info = with_hub(ctx, work)
    settings = settings_of(ctx)
    typer.echo(f"API key {info.name!r} for {info.agent or 'every agent'} (shown once):")
    typer.echo(f"  {value}")
    typer.echo(
        f"Send it as Authorization: Bearer <key>. OpenAI base URL: "
        f"{settings.resolved_public_url}/v1; Ollama URL: {settings.resolved_public_url}"
    )


@app.command("list")
def keys_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List live API keys (names and agents, never the keys)."""
    from hivecall.compat.keys import Keys

    async def work(hub: Hub) -> list[dict[str, Any]]:
        return [k.public() for k in await Keys(hub).list()]

    keys = with_hub(ctx, work)
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    if not keys:
        typer.echo("No API keys. Make one: hivecall keys create --name NAME [--agent AGENT]")
        return
    for k in keys:
        used = (k["last_used_at"] or "never")[:19]
        typer.echo(
            f"{k['name']:<20} {k['agent'] or '(every agent)':<20} "
            f"created {k['created_at'][:19]}  last used {used}"
        )


@app.command("revoke")
def keys_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The key's name.")]
) -> None:
    """Revoke an API key (a running hub refuses it within 2 seconds)."""
    from hivecall.compat.keys import Keys

    async def work(hub: Hub) -> str:
        return (await Keys(hub).revoke(name)).name

    typer.echo(f"revoked {with_hub(ctx, work)}")

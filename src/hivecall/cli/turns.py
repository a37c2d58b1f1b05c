"""`hivecall ask` runs one turn from the terminal; `hivecall turns list` shows the recent ones."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer

from hivecall.cli.common import with_hub
from hivecall.hub import Hub
from hivecall.turns.request import TurnRequest

app = typer.Typer(help="Turns the bridge ran.", no_args_is_help=True)


def ask(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    message: Annotated[str, typer.Argument(help="What to ask (use - to read stdin).")],
    session: Annotated[str | None, typer.Option(help="Session id to continue.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the turn as JSON.")] = False,
    spoken: Annotated[
        bool, typer.Option(help="Print the speakable answer instead of the raw one.")
    ] = False,
) -> None:
    """Run one turn on an agent from the terminal: its progress shows as it works, Ctrl-C stops
    it (the agent and everything it started)."""
    from rich.console import Console

    from hivecall.terminal import follow_turn

    if message == "-":
        message = sys.stdin.read()

    async def work(hub: Hub) -> dict[str, Any]:
        handle = await hub.bridge.start(
            TurnRequest(agent=agent, message=message, source="cli", session_id=session)
        )
        out = None if (as_json or spoken) else sys.stdout
        try:
            await follow_turn(handle, out=out, console=Console(stderr=True))
        except asyncio.CancelledError:  # Ctrl-C: stop the agent, then report how it ended
            hub.bridge.cancel(handle.turn_id)
        r = await handle.result()
        return {
            "turn_id": r.turn_id,
            "session_id": r.session_id,
            "status": r.status,
            "text": r.text,
            "spoken": r.spoken,
            "error_code": r.error_code,
        }

    result = with_hub(ctx, work)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    elif spoken:
        typer.echo(result["spoken"])
    elif result["text"] and not result["text"].endswith("\n"):
        typer.echo()
    if result["status"] != "done":
        if not as_json:
            typer.secho(result["spoken"], err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


@app.command("list")
def turns_list(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recent turns, newest first."""
    from hivecall.turns.view import turn_view

    async def work(hub: Hub) -> list[dict[str, Any]]:
        agent_id = (await hub.agents.get(agent)).id if agent else None
        return [turn_view(t) for t in await hub.bridge.list_turns(agent_id=agent_id, limit=limit)]

    turns = with_hub(ctx, work)
    if as_json:
        typer.echo(json.dumps(turns, indent=2))
        return
    for t in turns:
        typer.echo(
            f"{t['queued_at'][:19]}  {t['status']:<11}  {t['message'][:60]!r}"
            f" -> {(t['spoken'] or '')[:60]!r}"
        )

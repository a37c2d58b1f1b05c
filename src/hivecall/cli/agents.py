"""`hivecall agents …`: add, list, show, change and remove agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from hivecall.agents.records import AgentCreate, AgentUpdate
from hivecall.cli.common import fail_invalid, with_hub
from hivecall.hub import Hub

app = typer.Typer(help="Add, list, change and remove agents.", no_args_is_help=True)

M = TypeVar("M", AgentCreate, AgentUpdate)


def _print_agent(agent: dict[str, Any]) -> None:
    for key in (
        "name",
        "id",
        "runtime",
        "preset",
        "command",
        "workspace",
        "machine",
        "skills",
        "base_url",
        "model",
        "description",
        "env",
        "status",
    ):
        value = agent.get(key)
        if value in (None, "", []):
            continue
        if key == "env":
            value = [f"{v['name']}{'=(own value)' if v['own_value'] else ''}" for v in value]
        if isinstance(value, list):
            value = " ".join(value) if key == "command" else ", ".join(value)
        typer.echo(f"{key:>12}: {value}")


def _spec(schema: type[M], /, **values: Any) -> M:
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if v is not None}
    try:
        return schema.model_validate(given)
    except ValidationError as e:
        fail_invalid(e)


@app.command("add")
def agents_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Agent name (letters, digits, . _ -).")],
    runtime: Annotated[
        str | None,
        typer.Option(
            help="command, openai_chat, echo, or a CLI preset: claude, codex, aider, opencode, "
            "goose, gemini (default: command with --command, else echo)."
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help="Command template; {message} marks the argument that carries the request "
            "(else stdin)."
        ),
    ] = None,
    workspace: Annotated[Path | None, typer.Option(help="Folder the agent works in.")] = None,
    machine: Annotated[str | None, typer.Option(help="Machine name (default: this host).")] = None,
    skill: Annotated[list[str] | None, typer.Option(help="A skill (repeatable).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL (openai_chat).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (openai_chat).")] = None,
    description: Annotated[str | None, typer.Option(help="What this agent is for.")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Key for the agent's endpoint (openai_chat; hivemind: ACCESS_KEY:PASSWORD). "
            "Stored sealed, never shown."
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME: pass this variable of the hub's environment to the agent; NAME=VALUE: "
            "give it a value of its own (sealed). Repeatable. Agents get no other variables "
            "besides PATH, HOME, locale and the XDG folders."
        ),
    ] = None,
) -> None:
    """Add an agent."""
    spec = _spec(
        AgentCreate,
        name=name,
        runtime=runtime,
        command=command,
        workspace=workspace,
        machine=machine,
        skills=skill,
        base_url=base_url,
        model=model,
        description=description,
        api_key=api_key,
        env=env,
    )

    async def work(hub: Hub) -> dict[str, Any]:
        agent = await hub.agents.create(spec)
        return hub.bridge.view(agent)

    _print_agent(with_hub(ctx, work))


@app.command("edit")
def agents_edit(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    runtime: Annotated[str | None, typer.Option(help="New runtime or preset.")] = None,
    command: Annotated[str | None, typer.Option(help="New command template.")] = None,
    workspace: Annotated[Path | None, typer.Option(help="New workspace folder.")] = None,
    machine: Annotated[str | None, typer.Option(help="New machine name.")] = None,
    skill: Annotated[
        list[str] | None, typer.Option(help="Replace the skills (repeatable).")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="New base URL.")] = None,
    model: Annotated[str | None, typer.Option(help="New model.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="New endpoint key (empty: remove it).")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(help="Replace the agent's variables: NAME or NAME=VALUE (repeatable)."),
    ] = None,
    no_env: Annotated[
        bool, typer.Option("--no-env", help="Remove all of the agent's own variables.")
    ] = False,
) -> None:
    """Change an agent."""
    patch = _spec(
        AgentUpdate,
        name=name,
        runtime=runtime,
        command=command,
        workspace=workspace,
        machine=machine,
        skills=skill,
        base_url=base_url,
        model=model,
        description=description,
        api_key=api_key,
        env=[] if no_env else env,
    )

    async def work(hub: Hub) -> dict[str, Any]:
        updated = await hub.agents.update(agent, patch)
        return hub.bridge.view(updated)

    _print_agent(with_hub(ctx, work))


@app.command("list")
def agents_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List agents."""

    async def work(hub: Hub) -> list[dict[str, Any]]:
        return [hub.bridge.view(a) for a in await hub.agents.list()]

    agents = with_hub(ctx, work)
    if as_json:
        typer.echo(json.dumps(agents, indent=2))
        return
    if not agents:
        typer.echo(
            "No agents yet. Add one: hivecall agents add NAME --runtime claude --workspace DIR"
        )
        return
    rows = [
        (a["name"], a["preset"] or a["runtime"], a["machine"], a["workspace"] or "-", a["status"])
        for a in agents
    ]
    widths = [
        max(len(str(r[i])) for r in [("NAME", "RUNTIME", "MACHINE", "WORKSPACE", "STATUS"), *rows])
        for i in range(5)
    ]
    for r in [("NAME", "RUNTIME", "MACHINE", "WORKSPACE", "STATUS"), *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@app.command("show")
def agents_show(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with its context).")] = False,
) -> None:
    """Show an agent and the context it gets on each turn."""
    from hivecall.agents.context import gather, render_context

    async def work(hub: Hub) -> tuple[dict[str, Any], dict[str, Any], str]:
        record = await hub.agents.get(agent)
        context = await gather(record, await hub.bridge.recent(record.id))
        return (
            hub.bridge.view(record),
            context.public(),
            render_context(context),
        )

    public, context, rendered = with_hub(ctx, work)
    if as_json:
        typer.echo(json.dumps({"agent": public, "context": context}, indent=2))
        return
    _print_agent(public)
    typer.echo("\ncontext:\n" + rendered)


@app.command("rm")
def agents_rm(
    ctx: typer.Context, agent: Annotated[str, typer.Argument(help="Agent name or id.")]
) -> None:
    """Remove an agent (and its turn history)."""

    async def work(hub: Hub) -> str:
        return (await hub.agents.delete(agent)).name

    typer.echo(f"removed {with_hub(ctx, work)}")

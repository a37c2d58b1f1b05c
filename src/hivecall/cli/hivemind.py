"""`hivecall hivemind …`: the HiveMind clients that may connect, and what each may do.

Names mirror upstream's `hivemind-core` commands. A client is named by its name or id. A
running hub applies every change within a second, to connections already open too.
"""

# No `from __future__ import annotations`: the generated commands' annotations use their
# factory's locals (`kind`), which typer could not resolve from strings.

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from hivecall.cli.common import settings_of, with_hub
from hivecall.hivemind.clients import ClientView, HiveClients
from hivecall.hub import Hub
from hivecall.secretbox import SecretBox

T = TypeVar("T")

app = typer.Typer(
    help="HiveMind clients (satellites, bus clients) and their permissions.",
    no_args_is_help=True,
)

ClientArg = Annotated[str, typer.Argument(help="The client's name or id.")]
MsgArg = Annotated[str, typer.Argument(help="An OVOS bus message type, e.g. speak.")]


def _run(ctx: typer.Context, work: Callable[[HiveClients], Awaitable[T]]) -> T:
    settings = settings_of(ctx)

    async def run(hub: Hub) -> T:
        clients = HiveClients(store=hub.store, box=SecretBox.open(settings.home), agents=hub.agents)
        return await work(clients)

    return with_hub(ctx, run)


def _show(view: ClientView) -> None:
    rights = [
        r
        for r, on in (
            ("admin", view.admin),
            ("escalate", view.can_escalate),
            ("propagate", view.can_propagate),
            ("broadcast", view.can_broadcast and view.admin),
        )
        if on
    ]
    typer.echo(f"{view.name}  (id {view.id})")
    typer.echo(f"  agent:      {view.agent or '(the hub first agent)'}")
    typer.echo(f"  rights:     {', '.join(rights) or 'none'}")
    typer.echo(f"  may send:   {', '.join(view.allowed_types) or 'nothing'}")
    if view.message_blacklist:
        typer.echo(f"  never sent: {', '.join(view.message_blacklist)}")
    if view.skill_blacklist:
        typer.echo(f"  skills off: {', '.join(view.skill_blacklist)}")
    if view.intent_blacklist:
        typer.echo(f"  intents off: {', '.join(view.intent_blacklist)}")


@app.command("add-client")
def add_client(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for the client (letters, digits, . _ -).")],
    access_key: Annotated[
        str | None, typer.Option(help="Its access key (default: a random one, shown once).")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Its password (default: a random one, shown once).")
    ] = None,
    agent: Annotated[
        str | None, typer.Option(help="The agent it talks to (default: the hub's first agent).")
    ] = None,
    admin: Annotated[bool, typer.Option(help="Make it an administrator.")] = False,
) -> None:
    """Add a client. Its key is stored hashed, its password sealed with the home's key."""
    generated = access_key is None or password is None

    async def work(c: HiveClients) -> tuple[ClientView, str, str]:
        return await c.add(
            name=name, access_key=access_key, password=password, agent=agent, admin=admin
        )

    view, key, pw = _run(ctx, work)
    _show(view)
    if generated:
        typer.echo("\nCredentials for the client (shown once):")
        typer.echo(f"  access key: {key}")
        typer.echo(f"  password:   {pw}")


@app.command("list-clients")
def list_clients(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List clients and their rights (never their keys or passwords)."""

    async def work(c: HiveClients) -> list[ClientView]:
        return await c.list()

    views = _run(ctx, work)
    if as_json:
        typer.echo(json.dumps([v.public() for v in views], indent=2))
        return
    if not views:
        typer.echo("No HiveMind clients. Add one: hivecall hivemind add-client --name NAME")
    for v in views:
        _show(v)


@app.command("delete-client")
def delete_client(ctx: typer.Context, client: ClientArg) -> None:
    """Remove a client (a running hub disconnects it)."""

    async def work(c: HiveClients) -> ClientView:
        return await c.delete(client)

    typer.echo(f"deleted {_run(ctx, work).name}")


def _edit(ctx: typer.Context, work: Callable[[HiveClients], Awaitable[ClientView]]) -> None:
    _show(_run(ctx, work))


@app.command("allow-msg")
def allow_msg(
    ctx: typer.Context,
    msg_type: MsgArg,
    client: ClientArg,
    outgoing: Annotated[
        bool, typer.Option(help="Instead: let the hub send this type to the client again.")
    ] = False,
) -> None:
    """Let a client send a bus message type (or, --outgoing, receive it again)."""
    if outgoing:
        _edit(ctx, lambda c: c.list_remove(client, "message_blacklist", msg_type))
    else:
        _edit(ctx, lambda c: c.list_add(client, "allowed_types", msg_type))


@app.command("blacklist-msg")
def blacklist_msg(
    ctx: typer.Context,
    msg_type: MsgArg,
    client: ClientArg,
    outgoing: Annotated[
        bool, typer.Option(help="Instead: never send this type to the client.")
    ] = False,
) -> None:
    """Stop a client sending a bus message type (or, --outgoing, receiving it)."""
    if outgoing:
        _edit(ctx, lambda c: c.list_add(client, "message_blacklist", msg_type))
    else:
        _edit(ctx, lambda c: c.list_remove(client, "allowed_types", msg_type))


def _flag_commands(flag: str, what: str) -> None:
    def allow(ctx: typer.Context, client: ClientArg) -> None:
        _edit(ctx, lambda c: c.set_flag(client, f"can_{flag}", True))

    def deny(ctx: typer.Context, client: ClientArg) -> None:
        _edit(ctx, lambda c: c.set_flag(client, f"can_{flag}", False))

    allow.__doc__ = f"Let a client send {what}."
    deny.__doc__ = f"Stop a client sending {what}."
    app.command(f"allow-{flag}")(allow)
    app.command(f"blacklist-{flag}")(deny)


_flag_commands("escalate", "escalate messages (this hub has no parent: they stop here)")
_flag_commands("propagate", "propagate messages (to the hub's other clients)")
_flag_commands("broadcast", "broadcast messages (administrators only)")


@app.command("make-admin")
def make_admin(ctx: typer.Context, client: ClientArg) -> None:
    """Give a client administrator rights."""
    _edit(ctx, lambda c: c.set_flag(client, "is_admin", True))


@app.command("revoke-admin")
def revoke_admin(ctx: typer.Context, client: ClientArg) -> None:
    """Take a client's administrator rights away."""
    _edit(ctx, lambda c: c.set_flag(client, "is_admin", False))


@app.command("set-agent")
def set_agent(
    ctx: typer.Context,
    client: ClientArg,
    agent: Annotated[
        str | None, typer.Argument(help="Agent name or id (none: the hub's first agent).")
    ] = None,
) -> None:
    """Choose the agent a client talks to."""
    _edit(ctx, lambda c: c.set_agent(client, agent))


def _list_commands(kind: str) -> None:
    field = f"{kind}_blacklist"

    def block(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help=f"The {kind} id.")],
        client: ClientArg,
    ) -> None:
        _edit(ctx, lambda c: c.list_add(client, field, name))

    def unblock(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help=f"The {kind} id.")],
        client: ClientArg,
    ) -> None:
        _edit(ctx, lambda c: c.list_remove(client, field, name))

    article = "an" if kind[0] in "aeiou" else "a"
    block.__doc__ = f"Blacklist {article} {kind} for a client (recorded, as upstream does)."
    unblock.__doc__ = f"Take {article} {kind} off a client's blacklist."
    app.command(f"blacklist-{kind}")(block)
    app.command(f"allow-{kind}")(unblock)


_list_commands("skill")
_list_commands("intent")

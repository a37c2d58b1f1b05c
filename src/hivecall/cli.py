"""The `hivecall` command: serve the hub, manage agents, ask one, check the set-up."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from hivecall import __version__
from hivecall.agents.records import AgentCreate, AgentUpdate
from hivecall.bridge import TurnRequest
from hivecall.errors import HivecallError
from hivecall.hub import Hub
from hivecall.logs import setup_logging
from hivecall.settings import Settings, load

T = TypeVar("T")

app = typer.Typer(
    help="hivecall: talk out loud to the AI agents on your computer.",
    no_args_is_help=True,
    add_completion=False,
)
agents_app = typer.Typer(help="Add, list, change and remove agents.", no_args_is_help=True)
token_app = typer.Typer(help="The owner token.", no_args_is_help=True)
turns_app = typer.Typer(help="Turns the bridge ran.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(token_app, name="token")
app.add_typer(turns_app, name="turns")


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def settings_of(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def with_hub(ctx: typer.Context, work: Callable[[Hub], Awaitable[T]]) -> T:
    """Open the hub's store for one CLI command, run `work`, close it again."""

    async def run() -> T:
        hub = await Hub.open(settings_of(ctx), environ=os.environ)
        try:
            return await work(hub)
        finally:
            await hub.aclose()

    try:
        return asyncio.run(run())
    except HivecallError as e:
        fail(e.message, 2 if e.status < 500 else 1)
        raise  # unreachable: fail() exits


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Data folder (default: HIVECALL_HOME or the user data dir).")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Store URL (default: SQLite in the data folder).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML settings file.")] = None,
) -> None:
    try:
        ctx.obj = load(os.environ, home=home, database_url=database_url, config_file=config)
    except HivecallError as e:
        fail(e.message, 2)
    setup_logging(settings_of(ctx).log_level)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
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
        raise  # unreachable
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


@app.command()
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
        raise  # unreachable
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


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Show what is configured and what is missing (never the secret values)."""
    import shutil

    from hivecall.runtimes.presets import PRESETS

    s = settings_of(ctx)
    lines: list[tuple[str, str]] = [
        ("version", __version__),
        ("home", str(s.home)),
        ("config file", str(s.config_file or s.home / "hivecall.toml")),
        ("database", _redact_url(s.resolved_database_url)),
        ("listens on", s.resolved_public_url),
        (
            "owner token",
            "set by HIVECALL_OWNER_TOKEN" if s.owner_token else "generated on first start",
        ),
        (
            "OpenAI key (BYOK calls)",
            "set"
            if s.openai_api_key
            else "missing: add it in the dashboard's Settings or set OPENAI_API_KEY",
        ),
        ("OpenAI base URL", s.openai_base_url),
        ("realtime model", f"{s.realtime_model} (voice {s.realtime_voice})"),
    ]
    from hivecall import tls

    # after "listens on"; tls.doctor_rows only reads: doctor never creates a certificate
    at = next(i for i, (k, _) in enumerate(lines) if k == "listens on") + 1
    lines[at:at] = tls.doctor_rows(s)
    from hivecall.cloud.livekit import missing_settings

    missing = missing_settings(s)
    lines.append(
        ("LiveKit (cloud calls)", "set" if not missing else "missing: " + ", ".join(missing))
    )
    lines.append(
        (
            "cloud plan",
            "on (HIVECALL_CLOUD_CALLS)" if s.cloud_calls else "off (set HIVECALL_CLOUD_CALLS=1)",
        )
    )
    found = [
        f"{p.label} ({shutil.which(p.argv[0])})"
        for p in PRESETS.values()
        if shutil.which(p.argv[0])
    ]
    lines.append(
        ("agent CLIs on PATH", ", ".join(found) or "none found (the echo agent stands in)")
    )

    from hivecall.hivemind.doctor import report as hivemind_report

    async def check_store(hub: Hub) -> tuple[int, Settings, list[tuple[str, str]]]:
        rows = await hivemind_report(hub.settings, hub.store)
        return len(await hub.agents.list()), hub.settings, rows

    try:
        count, effective, hivemind_rows = with_hub(ctx, check_store)
        lines.append(("store", f"ok, {count} agent(s)"))
        if effective.openai_api_key and not s.openai_api_key:
            key_row = next(i for i, (k, _) in enumerate(lines) if k.startswith("OpenAI key"))
            lines[key_row] = (lines[key_row][0], "set (saved from the dashboard)")
        from hivecall.calls.modes import all_modes

        for mode in all_modes(effective):
            state = "available" if mode.available else f"unavailable: {mode.reason}"
            lines.append((f"{mode.name} calls", state))
        lines.extend(hivemind_rows)
    except typer.Exit:
        lines.append(("store", "cannot be opened (see the error above)"))
        lines.extend(asyncio.run(hivemind_report(s, None)))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        typer.echo(f"{key.ljust(width)}  {value}")


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(not a valid URL)"


# -- agents ----------------------------------------------------------------------------------


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


@agents_app.command("add")
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


@agents_app.command("edit")
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


M = TypeVar("M", AgentCreate, AgentUpdate)


def _spec(schema: type[M], /, **values: Any) -> M:
    from pydantic import ValidationError

    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if v is not None}
    try:
        return schema.model_validate(given)
    except ValidationError as e:
        fail("; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors()), 2)
        raise  # unreachable


@agents_app.command("list")
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


@agents_app.command("show")
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
            context.as_dict(),
            render_context(context),
        )

    public, context, rendered = with_hub(ctx, work)
    if as_json:
        typer.echo(json.dumps({"agent": public, "context": context}, indent=2))
        return
    _print_agent(public)
    typer.echo("\ncontext:\n" + rendered)


@agents_app.command("rm")
def agents_rm(
    ctx: typer.Context, agent: Annotated[str, typer.Argument(help="Agent name or id.")]
) -> None:
    """Remove an agent (and its turn history)."""

    async def work(hub: Hub) -> str:
        return (await hub.agents.delete(agent)).name

    typer.echo(f"removed {with_hub(ctx, work)}")


# -- turns -----------------------------------------------------------------------------------


@app.command()
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


@turns_app.command("list")
def turns_list(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recent turns, newest first."""
    from hivecall.web.views import turn_view

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


# -- token -----------------------------------------------------------------------------------


@token_app.command("reset")
def token_reset(ctx: typer.Context) -> None:
    """Replace the owner token (signs out every browser) and print the new login link."""
    settings = settings_of(ctx)
    if settings.owner_token:
        fail("HIVECALL_OWNER_TOKEN is set: change it there instead", 2)

    async def work(hub: Hub) -> str:
        return await hub.tokens.reset_owner()

    from hivecall.app import announce_owner_token

    announce_owner_token(settings, with_hub(ctx, work))


# -- keys (API keys for the OpenAI- and Ollama-compatible API; see hivecall/compat/) ---------

keys_app = typer.Typer(
    help="API keys for the OpenAI- and Ollama-compatible API.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for the key (what uses it, e.g. ha).")],
    agent: Annotated[
        str | None, typer.Option(help="Limit the key to this agent (default: every agent).")
    ] = None,
) -> None:
    """Make an API key and print it once (only its hash is stored)."""
    from pydantic import ValidationError

    from hivecall.compat.keys import KeyCreate, KeyInfo, Keys

    try:
        spec = KeyCreate.model_validate({"name": name, "agent": agent})
    except ValidationError as e:
        fail("; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors()), 2)
        raise  # unreachable

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


@keys_app.command("list")
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


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The key's name.")]
) -> None:
    """Revoke an API key (a running hub refuses it within 2 seconds)."""
    from hivecall.compat.keys import Keys

    async def work(hub: Hub) -> str:
        return (await Keys(hub).revoke(name)).name

    typer.echo(f"revoked {with_hub(ctx, work)}")


# -- end of keys -------------------------------------------------------------------------------


# -- phones (pairing codes and paired devices; see hivecall/pairing.py) -----------------------

devices_app = typer.Typer(help="Paired phones.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")


@app.command()
def pair(ctx: typer.Context) -> None:
    """Make a pairing code for a phone: print it, its link and a QR code to scan."""
    from hivecall.listening import PHONE_URL, phone_url
    from hivecall.pairing import NewCode, lan_hint, qr_terminal, trust_step

    settings = settings_of(ctx)

    async def work(hub: Hub) -> tuple[str, NewCode]:
        # The serving hub's own word (it may run with --https) unless public_url says.
        url = settings.public_url or await hub.store.get_meta(PHONE_URL) or phone_url(settings)
        made = await hub.pairing.create(
            ttl=hub.settings.pairing_code_ttl, public_url=url, created_by="cli"
        )
        return url.rstrip("/"), made

    url, made = with_hub(ctx, work)
    view = made.public()
    if step := trust_step(settings, url):
        typer.echo("1. Trust this hub on the phone: scan this, install the certificate.\n")
        typer.echo(qr_terminal(step.ca_url))
        typer.echo(f"  link: {step.ca_url}")
        typer.echo(f"  fingerprint (SHA-256): {step.fingerprint}")
        typer.echo(f"  {TRUST_NOTES}\n")
        typer.echo("2. Then pair it: scan this with the phone's camera, or open the link:\n")
    else:
        typer.echo("Scan this with the phone's camera, or open the link on the phone:\n")
    typer.echo(qr_terminal(made.url))
    typer.echo(f"  link: {made.url}")
    typer.echo(f"  code: {view['code']}  (works once, for {made.ttl // 60}:{made.ttl % 60:02d})")
    if hint := lan_hint(url):
        typer.secho(f"\nwarning: {hint}", err=True, fg=typer.colors.YELLOW)


TRUST_NOTES = (
    "Android: Settings > Security > Encryption & credentials > Install a certificate > "
    "CA certificate.\n  iPhone: open the link in Safari, allow the profile; Settings > "
    "General > VPN & Device Management > install it; then Settings > General > About > "
    "Certificate Trust Settings > turn on the hivecall CA."
)


@devices_app.command("list")
def devices_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List paired phones (names, when paired, last seen; never their tokens)."""

    async def work(hub: Hub) -> list[dict[str, Any]]:
        return [d.public() for d in await hub.pairing.devices()]

    devices = with_hub(ctx, work)
    if as_json:
        typer.echo(json.dumps(devices, indent=2))
        return
    if not devices:
        typer.echo("No paired phones. Pair one: hivecall pair")
        return
    for d in devices:
        seen = (d["last_seen_at"] or "never")[:19]
        typer.echo(f"{d['id']}  {d['name']:<24} paired {d['paired_at'][:19]}  last seen {seen}")


@devices_app.command("revoke")
def devices_revoke(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="The device's name or id.")],
) -> None:
    """Unpair a phone (a running hub refuses its token within 2 seconds)."""

    async def work(hub: Hub) -> str:
        return (await hub.pairing.revoke(device)).name

    typer.echo(f"revoked {with_hub(ctx, work)}")


# -- end of phones ---------------------------------------------------------------------------


from hivecall.hivemind.cli import app as hivemind_app  # noqa: E402 (after the commands it uses)

app.add_typer(hivemind_app, name="hivemind")


def main() -> None:
    app()

"""`hivecall pair` makes a pairing code for a phone; `hivecall devices …` lists and unpairs them
(see hivecall/pairing.py)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from hivecall.cli.common import settings_of, with_hub
from hivecall.hub import Hub

app = typer.Typer(help="Paired phones.", no_args_is_help=True)

TRUST_NOTES = (
    "Android: Settings > Security > Encryption & credentials > Install a certificate > "
    "CA certificate.\n  iPhone: open the link in Safari, allow the profile; Settings > "
    "General > VPN & Device Management > install it; then Settings > General > About > "
    "Certificate Trust Settings > turn on the hivecall CA."
)


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


@app.command("list")
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


@app.command("revoke")
def devices_revoke(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="The device's name or id.")],
) -> None:
    """Unpair a phone (a running hub refuses its token within 2 seconds)."""

    async def work(hub: Hub) -> str:
        return (await hub.pairing.revoke(device)).name

    typer.echo(f"revoked {with_hub(ctx, work)}")

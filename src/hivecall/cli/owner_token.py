"""`hivecall token reset`: replace the owner token."""

from __future__ import annotations

import typer

from hivecall.cli.common import fail, settings_of, with_hub
from hivecall.hub import Hub

app = typer.Typer(help="The owner token.", no_args_is_help=True)


@app.command("reset")
def token_reset(ctx: typer.Context) -> None:
    """Replace the owner token (signs out every browser) and print the new login link."""
    settings = settings_of(ctx)
    if settings.owner_token:
        fail("HIVECALL_OWNER_TOKEN is set: change it there instead", 2)

    async def work(hub: Hub) -> str:
        return await hub.tokens.reset_owner()

    from hivecall.app import announce_owner_token

    announce_owner_token(settings, with_hub(ctx, work))

"""The `hivecall` command: serve the hub, manage agents, ask one, check the set-up.

The whole command tree is assembled here, in the order `hivecall --help` lists it; each area's
commands live in their own module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from hivecall import __version__
from hivecall.cli import agents, hivemind, keys, owner_token, phones, turns
from hivecall.cli.common import fail, settings_of
from hivecall.cli.doctor import doctor
from hivecall.cli.serve import serve
from hivecall.cli.worker import worker
from hivecall.errors import HivecallError
from hivecall.logs import setup_logging
from hivecall.settings import load

app = typer.Typer(
    help="hivecall: talk out loud to the AI agents on your computer.",
    no_args_is_help=True,
    add_completion=False,
)


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


app.command()(serve)
app.command()(worker)
app.command()(doctor)
app.command()(turns.ask)
app.command()(phones.pair)
app.add_typer(agents.app, name="agents")
app.add_typer(owner_token.app, name="token")
app.add_typer(turns.app, name="turns")
app.add_typer(keys.app, name="keys")
app.add_typer(phones.app, name="devices")
app.add_typer(hivemind.app, name="hivemind")


def main() -> None:
    app()

"""What every `hivecall` command shares: the error exit, the settings, one hub per command."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError

from hivecall.errors import HivecallError
from hivecall.hub import Hub
from hivecall.settings import Settings

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def fail_invalid(error: ValidationError) -> NoReturn:
    """Exit 2 with pydantic's messages, as the API words them (without its prefix)."""
    fail("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors()), 2)


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

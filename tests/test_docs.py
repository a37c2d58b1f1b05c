"""Docs are tested: every setting and every CLI command is in the README."""

from __future__ import annotations

from pathlib import Path

import typer.main

from hivecall.cli import app
from hivecall.settings import table

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_opens_with_run_and_test() -> None:
    head = "\n".join(README.splitlines()[:10])
    assert "make run" in head and "make test" in head


def test_every_setting_is_documented() -> None:
    for row in table():
        assert f"`{row.name}`" in README, row.name
        for env in row.env:
            assert f"`{env}`" in README, env


def test_every_cli_command_is_documented() -> None:
    group = typer.main.get_group(app)
    for name, command in group.commands.items():
        assert f"hivecall {name}" in README, name
        sub = getattr(command, "commands", {})
        lines = [line for line in README.splitlines() if f"hivecall {name}" in line]
        for subname in sub:
            assert any(subname in line for line in lines), f"{name} {subname}"

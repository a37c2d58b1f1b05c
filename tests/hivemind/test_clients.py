"""HiveMind clients in the store (SQLite and PostgreSQL) and the `hivecall hivemind` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from typer.testing import CliRunner

from hivecall.cli import app as cli
from hivecall.errors import BadRequest, Conflict, NotFound
from hivecall.hivemind.clients import HiveClients, key_hash
from hivecall.hivemind.permissions import DEFAULT_ALLOWED_TYPES
from hivecall.hub import Hub
from hivecall.secretbox import SecretBox
from hivecall.store.models import HiveClient


def clients_of(app: Starlette) -> HiveClients:
    hub: Hub = app.state.hub
    return HiveClients(store=hub.store, box=SecretBox.open(hub.settings.home), agents=hub.agents)


async def test_add_stores_key_hashed_and_password_sealed(app: Starlette) -> None:
    c = clients_of(app)
    view, key, password = await c.add(
        name="kitchen", access_key="k" * 32, password="correct horse battery", agent="echo"
    )
    assert (key, password) == ("k" * 32, "correct horse battery")
    assert view.agent == "echo" and view.allowed_types == list(DEFAULT_ALLOWED_TYPES)
    hub: Hub = app.state.hub
    async with hub.store.session() as s:
        row = await s.get(HiveClient, view.id)
    assert row is not None
    assert row.key_hash == key_hash("k" * 32) and "k" * 32 not in row.key_hash
    assert "correct horse" not in row.password and row.password.startswith("v1:")
    (record,) = await c.records()
    assert record.password == "correct horse battery"
    assert "correct horse" not in repr(record)


async def test_generated_credentials_and_validation(app: Starlette) -> None:
    c = clients_of(app)
    _, key, password = await c.add(name="gen")
    assert len(key) == 32 and len(password) >= 20
    with pytest.raises(Conflict):
        await c.add(name="gen")
    with pytest.raises(Conflict):
        await c.add(name="other", access_key=key)
    with pytest.raises(BadRequest):
        await c.add(name="bad name")
    with pytest.raises(BadRequest):
        await c.add(name="short", password="2short")
    with pytest.raises(NotFound):
        await c.add(name="nobody", agent="no-such-agent")


async def test_rights_and_version_bumps(app: Starlette) -> None:
    c = clients_of(app)
    await c.add(name="sat")
    v0 = await c.version()
    view = await c.list_add("sat", "allowed_types", "mycroft.stop")
    assert "mycroft.stop" in view.allowed_types and await c.version() != v0
    view = await c.list_remove("sat", "allowed_types", "recognizer_loop:utterance")
    assert "recognizer_loop:utterance" not in view.allowed_types
    view = await c.set_flag("sat", "can_propagate", True)
    assert view.can_propagate
    with pytest.raises(BadRequest):
        await c.set_flag("sat", "password", True)
    await c.delete("sat")
    assert await c.list() == []
    with pytest.raises(NotFound):
        await c.delete("sat")


def test_cli_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"HIVECALL_HOME": str(tmp_path / "home"), "HIVECALL_OWNER_TOKEN": "t" * 30}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    out = run("hivemind", "add-client", "--name", "kitchen")
    assert "shown once" in out and "access key:" in out
    out = run("hivemind", "add-client", "--name", "den", "--access-key", "a" * 20,
              "--password", "p" * 20, "--admin")  # fmt: skip
    assert "p" * 20 not in out and "a" * 20 not in out and "admin" in out
    run("hivemind", "allow-msg", "mycroft.stop", "den")
    run("hivemind", "blacklist-msg", "speak", "den", "--outgoing")
    run("hivemind", "allow-propagate", "den")
    run("hivemind", "blacklist-escalate", "den")
    run("hivemind", "blacklist-skill", "skill-x", "den")
    listed = json.loads(run("hivemind", "list-clients", "--json"))
    den = next(c for c in listed if c["name"] == "den")
    assert "mycroft.stop" in den["allowed_types"] and den["message_blacklist"] == ["speak"]
    assert (
        den["can_propagate"] and not den["can_escalate"] and den["skill_blacklist"] == ["skill-x"]
    )
    assert "p" * 20 not in json.dumps(listed)
    run("hivemind", "delete-client", "den")
    run("hivemind", "delete-client", "den", code=2)
    assert [c["name"] for c in json.loads(run("hivemind", "list-clients", "--json"))] == ["kitchen"]

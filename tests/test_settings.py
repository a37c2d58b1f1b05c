"""One settings table, read from defaults, TOML, the environment and flags, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivecall.errors import ConfigError
from hivecall.settings import describe, load, table


def test_precedence_defaults_toml_env_flags(tmp_path: Path) -> None:
    (tmp_path / "hivecall.toml").write_text(
        'port = 9000\nrealtime-voice = "cedar"\nturn_timeout = 5\n'
    )
    s = load({"HIVECALL_HOME": str(tmp_path)})
    assert (s.port, s.realtime_voice, s.turn_timeout) == (9000, "cedar", 5.0)
    s = load({"HIVECALL_HOME": str(tmp_path), "HIVECALL_PORT": "9100"})
    assert s.port == 9100
    s = load({"HIVECALL_HOME": str(tmp_path), "HIVECALL_PORT": "9100"}, port=9200)
    assert s.port == 9200
    assert s.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'hivecall.db'}"


def test_openai_key_names(tmp_path: Path) -> None:
    env = {"HIVECALL_HOME": str(tmp_path), "OPENAI_API_KEY": "sk-b"}
    assert load(env).openai_api_key == "sk-b"
    assert load({**env, "OPENAI_REALTIME_KEY": "sk-a"}).openai_api_key == "sk-a"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("port = 'eighty'", "port"),
        ("colour = 1", "unknown setting"),
        ("port = [", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "hivecall.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load({"HIVECALL_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="HIVECALL_PORT"):
        load({"HIVECALL_HOME": str(tmp_path / "x"), "HIVECALL_PORT": "many"})


def test_describe_hides_secrets(tmp_path: Path) -> None:
    s = load(
        {
            "HIVECALL_HOME": str(tmp_path),
            "OPENAI_API_KEY": "sk-very-secret",
            "LIVEKIT_API_SECRET": "lk",
        }
    )
    shown = describe(s)
    assert "sk-very-secret" not in repr(shown) and "'lk'" not in repr(shown)
    secrets = {r.name for r in table() if r.secret}
    assert secrets == {"owner_token", "openai_api_key", "livekit_api_key", "livekit_api_secret"}

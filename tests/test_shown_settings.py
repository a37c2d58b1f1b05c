"""Where settings are shown (/api/settings, `settings.describe`), a URL's password is ***."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivecall.app import create_app
from hivecall.settings import Settings, describe, masked_url
from tests.conftest import OWNER, owner_client

DB_PASSWORD = "db-password-never-shown-0123"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://hub:s3cret@db.example/hub", "postgresql://hub:***@db.example/hub"),
        ("postgresql+asyncpg://hub:p/a@ss@db:5432/hub", "postgresql+asyncpg://hub:***@db:5432/hub"),
        (
            "postgresql://hub@db/hub?sslmode=require&password=s3cret",
            "postgresql://hub@db/hub?sslmode=require&password=***",
        ),
        ("https://worker:s3cret@hub.example", "https://worker:***@hub.example"),
        ("postgresql://hub@db/hub", "postgresql://hub@db/hub"),
        ("sqlite+aiosqlite:////home/me/.local/share/hivecall/hivecall.db", None),
        ("http://127.0.0.1:8765", None),
        ("AES-GCM,CHACHA20-POLY1305", None),
    ],
)
def test_a_url_password_is_masked(url: str, shown: str | None) -> None:
    assert masked_url(url) == (shown or url)


def test_describe_masks_every_url_password(tmp_path: Path) -> None:
    s = Settings(
        home=tmp_path,
        database_url=f"postgresql://hub:{DB_PASSWORD}@db/hub",
        worker_hub_url=f"https://worker:{DB_PASSWORD}@hub.example",
    )
    rows = {row["name"]: row for row in describe(s)}
    assert rows["database_url"]["value"] == "postgresql://hub:***@db/hub"
    assert rows["worker_hub_url"]["value"] == "https://worker:***@hub.example"
    assert DB_PASSWORD not in repr(rows)
    assert s.database_url == f"postgresql://hub:{DB_PASSWORD}@db/hub"  # still whole inside


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_settings_api_masks_the_database_password(
    database_url: str, tmp_path: Path, environ: dict[str, str], workspace: Path
) -> None:
    # The throwaway server trusts every local connection, so a password in the URL is harmless
    # to it and shows what /api/settings makes of one.
    user, rest = database_url.split("://", 1)[1].split("@", 1)
    url = f"postgresql://{user}:{DB_PASSWORD}@{rest}"
    settings = Settings(home=tmp_path / "home", database_url=url, owner_token=OWNER)
    app = create_app(settings, environ=environ, workspace=workspace)
    async with app.router.lifespan_context(app), owner_client(app) as client:
        r = await client.get("/api/settings")
    assert r.status_code == 200, r.text
    assert DB_PASSWORD not in r.text
    (row,) = [row for row in r.json()["settings"] if row["name"] == "database_url"]
    assert row["value"] == f"postgresql://{user}:***@{rest}"

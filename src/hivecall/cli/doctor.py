"""`hivecall doctor`: what is configured and what is missing (never the secret values)."""

from __future__ import annotations

import asyncio

import typer

from hivecall import __version__
from hivecall.cli.common import settings_of, with_hub
from hivecall.hub import Hub
from hivecall.settings import Settings


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
    from hivecall.calls.cloud.livekit import missing_settings

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

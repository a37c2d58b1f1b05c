"""The HiveMind rows of `hivecall doctor` (hivemind/doctor.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivecall.hivemind import doctor, noise
from hivecall.settings import Settings
from tests.hivemind.conftest import Hive
from tests.hivemind.test_tls import self_signed


async def test_a_running_listener_is_reported(hive: Hive) -> None:
    await hive.add("kitchen")
    await hive.add("office")
    rows = dict(await doctor.report(hive.settings, hive.hub.store))
    assert rows["HiveMind listener"] == f"ws://127.0.0.1:{hive.settings.hivemind_port}"
    assert rows["HiveMind TLS"].startswith("off")
    assert rows["HiveMind protocols"].startswith("v1 password handshake (AES-GCM")
    assert rows["HiveMind protocols"].endswith(
        "v3 Noise_XXpsk2_25519_ChaChaPoly_SHA256 (argon2id PSK)"
    )
    assert hive.listener.noise is not None
    assert rows["HiveMind Noise key"] == hive.listener.noise.public_key  # what clients pin
    assert rows["HiveMind clients"] == "2 registered"
    assert "password" not in repr(rows).lower().replace("password handshake", "")


async def test_before_the_first_start(hive_settings: Settings, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = hive_settings.replace(hivemind_tls_cert=cert, hivemind_tls_key=key)
    rows = dict(await doctor.report(settings, None))
    assert rows["HiveMind listener"].startswith("wss://")
    assert rows["HiveMind TLS"] == f"on ({cert})"
    assert rows["HiveMind Noise key"] == "made on the listener's first start"
    assert rows["HiveMind clients"] == "unknown (the store cannot be opened)"
    assert not (settings.home / noise.STATIC_KEY_FILE).exists()  # doctor creates nothing


async def test_off_misconfigured_and_without_argon2(
    hive_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = await doctor.report(hive_settings.replace(hivemind_port=0), None)
    assert off == [("HiveMind listener", "off (hivemind_port is 0)")]
    bad = await doctor.report(hive_settings.replace(hivemind_ciphers="ROT13"), None)
    assert bad[0][1].startswith("will not start: hivemind_ciphers")
    monkeypatch.setattr(noise, "argon2_available", lambda: False)
    rows = dict(await doctor.report(hive_settings, None))
    assert "v3 off: this cryptography has no argon2id" in rows["HiveMind protocols"]


async def test_a_v3_only_listener_says_so(hive_settings: Settings) -> None:
    rows = dict(await doctor.report(hive_settings.replace(hivemind_min_protocol=3), None))
    assert rows["HiveMind protocols"].startswith("v1 off (hivemind_min_protocol 3); v3 Noise_")
    refused = await doctor.report(hive_settings.replace(hivemind_require_tls=True), None)
    assert refused[0][1].startswith("will not start: hivemind_require_tls is on")

"""The listener's hardening settings: hivemind_min_protocol (v1 off), hivemind_require_tls and
hivemind_allowed_origins (web pages refused at the websocket handshake)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hivecall.errors import ConfigError
from hivecall.hivemind.config import check
from hivecall.hivemind_protocol.crypto import envelope, new_iv
from hivecall.hivemind_protocol.wire import V1_OFF, MsgType
from hivecall.settings import Settings
from tests.hivemind.conftest import Hive, MakeHive
from tests.hivemind.peer import Peer, url
from tests.hivemind.test_tls import self_signed

SHAKE = {"binarize": False, "encodings": ["JSON-B64"], "ciphers": ["AES-GCM"]}

# -- hivemind_min_protocol ---------------------------------------------------------------------


async def test_a_v3_only_hub_offers_only_v3(make_hive: MakeHive) -> None:
    async with make_hive(hivemind_min_protocol=3) as hive:
        cred = await hive.add("sat")
        peer = await Peer.connect(hive.port, cred.key, cred.password)
        await peer.noise_offer()
        assert (peer.offer["min_protocol_version"], peer.offer["max_protocol_version"]) == (3, 3)
        assert peer.offer["noise"]["patterns"] == ["XXpsk2"]
        await peer.aclose()


async def test_a_v3_only_hub_answers_v3_clients(make_hive: MakeHive) -> None:
    async with make_hive(hivemind_min_protocol=3) as hive:
        cred = await hive.add("sat")
        peer = await Peer.connect(hive.port, cred.key, cred.password)
        await peer.noise_handshake()
        await peer.utter("noise only")
        assert (await peer.recv_bus())[0] == "speak"
        await peer.aclose()


async def test_a_v3_only_hub_closes_v1_clients_with_a_reason(
    make_hive: MakeHive, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hivecall.hivemind import handshake

    derived: list[object] = []
    monkeypatch.setattr(handshake, "derive_key", lambda *a: derived.append(a))
    async with make_hive(hivemind_min_protocol=3) as hive:
        cred = await hive.add("sat")
        peer = await Peer.connect(hive.port, cred.key, cred.password)
        await peer.noise_offer()
        await peer.send_plain(
            MsgType.SHAKE, {**SHAKE, "envelope": envelope(cred.password, new_iv())}
        )
        assert await peer.closed() == (1008, V1_OFF)
        assert derived == []  # refused before any work
        assert len(V1_OFF.encode()) <= 123  # what a close frame can carry


def test_min_protocol_is_1_or_3(hive_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in (0, 2, 4):
        with pytest.raises(ConfigError, match="hivemind_min_protocol"):
            check(hive_settings.replace(hivemind_min_protocol=bad))
    check(hive_settings.replace(hivemind_min_protocol=3))
    monkeypatch.setattr("hivecall.hivemind.noise.argon2_available", lambda: False)
    with pytest.raises(ConfigError, match="argon2id"):
        check(hive_settings.replace(hivemind_min_protocol=3))


def test_the_settings_from_the_environment(tmp_path: Path) -> None:
    from hivecall.settings import load

    environ = {
        "HIVECALL_HOME": str(tmp_path),
        "HIVECALL_HIVEMIND_MIN_PROTOCOL": "3",
        "HIVECALL_HIVEMIND_REQUIRE_TLS": "true",
        "HIVECALL_HIVEMIND_ALLOWED_ORIGINS": "https://panel.example",
    }
    settings = load(environ)
    assert settings.hivemind_min_protocol == 3 and settings.hivemind_require_tls
    assert settings.hivemind_allowed_origins == "https://panel.example"
    assert (load({"HIVECALL_HOME": str(tmp_path)}).hivemind_min_protocol, settings.port) == (
        1,
        8765,
    )


# -- hivemind_require_tls ----------------------------------------------------------------------


def test_require_tls_refuses_to_start_without_a_certificate(
    hive_settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="hivemind_require_tls"):
        check(hive_settings.replace(hivemind_require_tls=True))
    cert, key = self_signed(tmp_path)
    check(
        hive_settings.replace(
            hivemind_require_tls=True, hivemind_tls_cert=cert, hivemind_tls_key=key
        )
    )


async def test_require_tls_stops_the_hub_at_start(make_hive: MakeHive) -> None:
    """As `hivecall serve` would: create_app checks the settings before anything starts."""
    with pytest.raises(ConfigError, match="hivemind_tls_cert"):
        async with make_hive(hivemind_require_tls=True):
            pass


# -- hivemind_allowed_origins ------------------------------------------------------------------


async def refusal(hive: Hive, key: str, origin: str) -> dict[str, object]:
    with pytest.raises(InvalidStatus) as caught:
        await connect(url(hive.port, key), additional_headers={"Origin": origin}, open_timeout=5)
    response = caught.value.response
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/json"
    body: dict[str, object] = json.loads(response.body)
    return body


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://127.0.0.1:8765",  # even the hub's own dashboard: it never opens this listener
        "http://127.0.0.1",  # the listener's host, another port
        "https://127.0.0.1:{port}",  # the listener's host and port, but wss's scheme on ws://
        "null",  # sandboxed frames, file:// pages
    ],
)
async def test_a_web_page_cannot_open_the_listener(hive: Hive, origin: str) -> None:
    cred = await hive.add("sat")
    body = await refusal(hive, cred.key, origin.format(port=hive.port))
    assert body["error"] == {
        "code": "cross_site_request",
        "message": "web pages may not open the HiveMind listener: add the page's origin to "
        "hivemind_allowed_origins (HIVECALL_HIVEMIND_ALLOWED_ORIGINS)",
    }
    assert not hive.listener.live  # refused before the connection existed


async def raw_handshake(port: int, host: str, origin: str) -> int:
    """The status of a websocket handshake with these Host and Origin headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET /?authorization=eA== HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


async def test_upstream_clients_own_origin_is_let_through(hive: Hive) -> None:
    """websocket-client (hivemind-bus-client) sends Origin: http://HOST:PORT of the URL it
    opens: the listener's own origin, at an address or a loopback name."""
    for host in (f"127.0.0.1:{hive.port}", f"localhost:{hive.port}"):
        assert await raw_handshake(hive.port, host, f"http://{host}") == 101


async def test_a_rebinding_page_is_refused(make_hive: MakeHive) -> None:
    """A page at http://evil.example:PORT whose name now points at 127.0.0.1: Origin and Host
    agree, but the hub was never told that name."""
    async with make_hive(allowed_hosts="hub.lan") as hive:
        evil = f"evil.example:{hive.port}"
        assert await raw_handshake(hive.port, evil, f"http://{evil}") == 403
        lan = f"hub.lan:{hive.port}"  # a name the hub answers to is the listener's own
        assert await raw_handshake(hive.port, lan, f"http://{lan}") == 101


async def test_listed_origins_may(make_hive: MakeHive) -> None:
    async with make_hive(
        hivemind_allowed_origins="https://panel.example, http://127.0.0.1:9000"
    ) as hive:
        cred = await hive.add("sat")
        for origin in (
            "https://panel.example",
            "HTTP://127.0.0.1:9000",
            "https://panel.example:443",
        ):
            ws = await connect(url(hive.port, cred.key), additional_headers={"Origin": origin})
            await ws.close()
        await refusal(hive, cred.key, "https://other.example")
        await refusal(hive, cred.key, "http://panel.example")  # another scheme: another origin


async def test_two_origin_headers_must_both_be_listed(make_hive: MakeHive) -> None:
    async with make_hive(hivemind_allowed_origins="https://panel.example") as hive:
        cred = await hive.add("sat")
        with pytest.raises(InvalidStatus):
            await connect(
                url(hive.port, cred.key),
                additional_headers=[("Origin", "https://panel.example"), ("Origin", "http://evil")],
                open_timeout=5,
            )


async def test_clients_without_an_origin_are_unaffected(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.aclose()


def test_bad_allowed_origins_are_refused(hive_settings: Settings) -> None:
    for bad in ("panel.example", "https://panel.example/path", "ftp://x", "https://u@x", "*"):
        with pytest.raises(ConfigError, match="hivemind_allowed_origins"):
            check(hive_settings.replace(hivemind_allowed_origins=bad))
    check(hive_settings.replace(hivemind_allowed_origins="https://a.example, http://b:8080/"))

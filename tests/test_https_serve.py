"""`hivecall serve --https`: where it listens, what it serves on each address, pairing over it."""

from __future__ import annotations

import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hivecall.listening import phone_url, plan
from hivecall.settings import Settings
from tests.netaddr import lan_address
from tests.standins.threaded import free_port
from tests.test_serve_e2e import SECRET, Server, cli

TOKEN = "https-owner-token-0123456789abcdefgh"


def settings(**kw: object) -> Settings:
    return Settings(home=Path("/nonexistent"), **kw)  # type: ignore[arg-type]


def test_without_https_the_port_is_plain_on_the_host() -> None:
    assert plan(settings(host="0.0.0.0"), ["192.168.1.5"]).tls == ()
    assert plan(settings(host="0.0.0.0"), ["192.168.1.5"]).plain == ("0.0.0.0",)
    assert phone_url(settings(host="0.0.0.0"), ["192.168.1.5"]) == "http://127.0.0.1:8765"


def test_https_serves_the_network_addresses_and_keeps_loopback_plain() -> None:
    wild = settings(host="0.0.0.0", https=True)
    lan = ["192.168.1.5", "169.254.3.3", "fe80::1", "10.0.0.7"]
    assert plan(wild, lan).plain == ("127.0.0.1",)
    assert plan(wild, lan).tls == ("192.168.1.5", "10.0.0.7")  # no link-local, IPv4
    assert plan(wild, lan).warning is None
    assert phone_url(wild, lan) == "https://192.168.1.5:8765"
    assert wild.resolved_public_url == "http://127.0.0.1:8765"  # this computer's URL
    one = settings(host="10.0.0.7", https=True)
    assert plan(one, lan).tls == ("10.0.0.7",) and plan(one, lan).plain == ("127.0.0.1",)
    assert one.resolved_public_url == "http://127.0.0.1:8765"
    # public_url wins (a real domain, a tunnel).
    named = settings(host="0.0.0.0", https=True, public_url="https://hub.example.net/")
    assert phone_url(named, lan) == "https://hub.example.net"


def test_https_on_loopback_only_warns_that_no_phone_reaches_it() -> None:
    local = plan(settings(https=True), ["192.168.1.5"])
    assert local.tls == () and local.plain == ("127.0.0.1",)
    assert local.warning and "--host 0.0.0.0" in local.warning
    offline = plan(settings(host="0.0.0.0", https=True), [])
    assert offline.tls == () and offline.warning


class HttpsHub(Server):
    def __init__(self, env: dict[str, str], cwd: Path, address: str) -> None:
        self.hm_port = free_port()
        https = ["--https", "--host", "0.0.0.0", "--hivemind-port", str(self.hm_port)]
        super().__init__(env, cwd, *https)
        self.plain = self.url
        self.secure = f"https://{address}:{self.port}"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "HIVECALL_OWNER_TOKEN": TOKEN,
        "OPENAI_API_KEY": SECRET,
    }


@pytest.fixture
def address() -> Iterator[str]:
    with lan_address() as a:
        yield a


@pytest.mark.slow
def test_serve_https_for_phones_on_the_network_plain_for_this_computer(
    env: dict[str, str], tmp_path: Path, address: str
) -> None:
    hub = HttpsHub(env, tmp_path, address)
    try:
        ca = tmp_path / "hub" / "tls" / "ca.crt"
        trust = ssl.create_default_context(cafile=ca)
        owner = {"authorization": f"Bearer {TOKEN}"}
        # The phone's address: HTTPS, verified against the hub's own CA (no "ignore errors").
        with httpx.Client(verify=trust, timeout=10) as phone:
            assert phone.get(f"{hub.secure}/api/health").status_code == 200
            got = phone.get(f"{hub.secure}/ca.crt")
            assert got.status_code == 200
            assert got.headers["content-type"] == "application/x-x509-ca-cert"
            assert got.content == ca.read_bytes() and b"PRIVATE KEY" not in got.content
            made = phone.post(f"{hub.secure}/api/pairing", headers=owner).json()
        # Plain HTTP there is refused: the TLS listener speaks nothing else.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{address}:{hub.port}/api/health", timeout=5)
        # This computer keeps plain HTTP on loopback, and a CA-less client is refused on TLS.
        assert httpx.get(f"{hub.plain}/api/health").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{hub.secure}/api/health", timeout=5)

        # Pairing: the QR and the claim name the HTTPS address, after the trust step.
        assert made["public_url"] == hub.secure and made["hint"] is None
        assert made["pairing"]["url"].startswith(f"{hub.secure}/m#pair=")
        step = made["https"]
        assert step["ca_url"] == f"{hub.secure}/ca.crt" and "<svg" in step["ca_qr_svg"]
        assert len(step["fingerprint"].split(":")) == 32
        from_loopback = httpx.post(f"{hub.plain}/api/pairing", headers=owner).json()
        assert from_loopback["public_url"] == hub.secure  # the QR is for the phone either way

        # The HiveMind listener has no certificate of its own: it uses the same one (wss://).
        raw = socket.create_connection((address, hub.hm_port), timeout=5)
        with trust.wrap_socket(raw, server_hostname=address) as wrapped:
            assert wrapped.version() in ("TLSv1.2", "TLSv1.3")

        # `hivecall pair` shows the same two steps.
        shown = cli(env, "pair").stdout
        assert f"{hub.secure}/ca.crt" in shown and step["fingerprint"] in shown
        assert f"{hub.secure}/m#pair=" in shown and "Android" in shown
    finally:
        out, err = hub.stop()
    assert hub.proc.returncode == 0, err
    assert f"HTTPS for phones on {hub.secure}" in err
    assert SECRET not in out + err and TOKEN not in out + err
    key = (tmp_path / "hub" / "tls" / "ca.key").read_text()
    assert key.strip().splitlines()[1] not in out + err

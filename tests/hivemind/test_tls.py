"""wss:// with a configured certificate: hivecall's peer and the real upstream clients."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hivecall.errors import ConfigError
from hivecall.hivemind.config import check
from hivecall.settings import Settings
from tests.hivemind.conftest import MakeHive
from tests.hivemind.peer import Peer
from tests.hivemind.test_interop import VERSIONS, Upstream


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "hm.crt", tmp / "hm.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_wss_with_our_peer(make_hive: MakeHive, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with make_hive(hivemind_tls_cert=cert, hivemind_tls_key=key) as hive:
        cred = await hive.add("sat")
        trust = ssl.create_default_context(cafile=str(cert))
        peer = await Peer.connect(hive.port, cred.key, cred.password, tls=trust)
        await peer.handshake()
        await peer.utter("over tls")
        assert (await peer.recv_bus())[0] == "speak"
        await peer.aclose()
        with pytest.raises(Exception):  # noqa: B017 - plain ws:// to a wss:// listener fails
            await Peer.connect(hive.port, cred.key, cred.password)


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
async def test_wss_with_upstream_clients(make_hive: MakeHive, tmp_path: Path, version: str) -> None:
    cert, key = self_signed(tmp_path)
    async with make_hive(hivemind_tls_cert=cert, hivemind_tls_key=key) as hive:
        cred = await hive.add("sat")
        client = await Upstream.run(version, hive, cred, "utter", tmp_path, tls=True)
        try:
            assert client.result["answered"], client.result
        finally:
            await client.aclose()


def test_bad_tls_settings_are_refused(hive_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be loaded"):
        check(hive_settings.replace(hivemind_tls_cert=tmp_path / "missing.pem"))
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ConfigError, match="cannot be loaded"):  # the key is not in the cert file
        check(hive_settings.replace(hivemind_tls_cert=cert))
    with pytest.raises(ConfigError, match="needs hivemind_tls_cert"):
        check(hive_settings.replace(hivemind_tls_key=tmp_path / "hm.key"))

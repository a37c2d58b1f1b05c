"""The hub's own CA and server certificate (tls.py), a certificate the user brings, and what
`hivecall doctor` says about them. Real files, real keys, real TLS handshakes on 127.0.0.1."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from hivecall import tls
from hivecall.cli import app as cli
from hivecall.errors import ConfigError
from hivecall.interfaces import lan_addresses
from hivecall.settings import Settings

LAN = ["192.168.1.20", "fd00::5"]


def certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def san_of(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def machine() -> str:
    return socket.gethostname().lower().rstrip(".")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- names -------------------------------------------------------------------------------------


def test_wanted_names_cover_loopback_this_machine_its_addresses_and_the_public_url(
    tmp_path: Path,
) -> None:
    settings = Settings(
        home=tmp_path,
        host="192.168.1.20",
        public_url="https://Hub.Example:8443/",
        allowed_hosts="*, Box.LAN:8765, [fd00::5]",
    )
    names = tls.wanted_names(settings, LAN)
    first = machine().split(".")[0]
    assert names[:3] == ["localhost", "127.0.0.1", "::1"]
    for name in (machine(), f"{first}.local", *LAN, "hub.example", "box.lan"):
        assert name in names
    assert "*" not in names and len(names) == len(set(names))
    wildcard = tls.wanted_names(Settings(home=tmp_path, host="0.0.0.0"), [])
    assert "0.0.0.0" not in wildcard and wildcard[:3] == ["localhost", "127.0.0.1", "::1"]


def test_lan_addresses_are_the_up_interfaces_addresses_without_loopback_or_link_local() -> None:
    found = lan_addresses()
    for text in found:
        ip = ipaddress.ip_address(text)
        assert not (ip.is_loopback or ip.is_link_local), text
    if shutil.which("ip") is None:
        return
    # the same machine seen by iproute2: the global addresses of the interfaces that are up,
    # without IPv6 ones that rotate or are not usable (yet)
    shown = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True).stdout)
    skipped = ("temporary", "deprecated", "tentative", "dadfailed")
    expected = {
        a["local"]
        for link in shown
        if "UP" in link["flags"] and "LOOPBACK" not in link["flags"]
        for a in link.get("addr_info", [])
        if a.get("scope") == "global" and not any(a.get(flag) for flag in skipped)
    }
    assert expected <= set(found)


def test_the_server_certificate_names_every_wanted_name(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, public_url="https://hub.example")
    served = tls.ensure(settings, addresses=LAN)
    wanted = tls.wanted_names(settings, LAN)
    assert served.names == tuple(wanted) and served.issued and not served.user_supplied
    san = san_of(certs(served.cert)[0])
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "::1",
        *LAN,
    ]
    assert {"localhost", machine(), "hub.example"} <= set(san.get_values_for_type(x509.DNSName))


# -- files and their permissions ---------------------------------------------------------------


def test_the_folder_is_private_keys_are_0600_and_the_ca_key_is_only_in_ca_key(
    tmp_path: Path,
) -> None:
    served = tls.ensure(Settings(home=tmp_path), addresses=LAN)
    folder = tmp_path / tls.TLS_DIR
    assert mode(folder) == 0o700
    assert mode(folder / "ca.key") == 0o600 and mode(served.key) == 0o600
    assert served.ca == folder / "ca.crt" and served.key == folder / "server.key"
    assert sorted(p.name for p in folder.iterdir()) == [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
    ]
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    secret = ca_key.private_numbers().private_value.to_bytes(32, "big")
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "ca.key":
            for blob in [path.read_bytes(), *pem_bodies(path.read_bytes())]:
                assert secret not in blob, path
    # the chain: the server certificate, then the CA's
    server, ca = certs(served.cert)
    assert ca == certs(folder / "ca.crt")[0]
    server.verify_directly_issued_by(ca)


def pem_bodies(data: bytes) -> list[bytes]:
    found = re.findall(rb"-----BEGIN [A-Z ]+-----(.*?)-----END", data, re.S)
    return [base64.b64decode(b"".join(body.split())) for body in found]


def test_the_ca_and_server_certificates_have_the_right_extensions(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    served = tls.ensure(Settings(home=tmp_path), addresses=LAN, now=now)
    server, ca = certs(served.cert)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert str(ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value).startswith(
        "hivecall hub CA ("
    )
    assert ca.not_valid_after_utc - now > timedelta(days=9 * 365)
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server_usage = server.extensions.get_extension_for_class(x509.KeyUsage)
    assert server_usage.critical and server_usage.value.digital_signature
    assert not server_usage.value.key_cert_sign
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert server.not_valid_after_utc - server.not_valid_before_utc <= timedelta(days=397)
    assert server.not_valid_before_utc < now - timedelta(minutes=1)  # room for clock skew
    assert served.not_after == server.not_valid_after_utc and served.not_after.tzinfo is not None


# -- reuse and renewal -------------------------------------------------------------------------


def test_a_second_ensure_reuses_the_certificate(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = tls.ensure(settings, addresses=LAN)
    files = {p.name: p.read_bytes() for p in (tmp_path / tls.TLS_DIR).iterdir()}
    again = tls.ensure(settings, addresses=LAN)
    assert not again.issued and again.names == first.names and again.not_after == first.not_after
    assert {p.name: p.read_bytes() for p in (tmp_path / tls.TLS_DIR).iterdir()} == files


def test_a_certificate_near_its_end_is_reissued_by_the_same_ca(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    now = datetime.now(UTC)
    first = tls.ensure(settings, addresses=LAN, now=now)
    ca_before = first.ca.read_bytes() if first.ca else b""
    old = certs(first.cert)[0]
    assert not tls.ensure(settings, addresses=LAN, now=now + timedelta(days=360)).issued
    later = tls.ensure(settings, addresses=LAN, now=now + timedelta(days=370))
    new, ca = certs(later.cert)
    assert later.issued and new.serial_number != old.serial_number
    assert later.not_after > first.not_after + timedelta(days=360)
    assert first.ca is not None and first.ca.read_bytes() == ca_before
    new.verify_directly_issued_by(ca)


def test_a_new_address_reissues_the_certificate_with_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = tls.ensure(settings, addresses=["192.168.1.20"])
    serial = certs(first.cert)[0].serial_number
    moved = tls.ensure(settings, addresses=["10.0.0.7"])
    assert moved.issued and "10.0.0.7" in moved.names and "192.168.1.20" not in moved.names
    assert certs(moved.cert)[0].serial_number != serial
    assert not tls.ensure(settings, addresses=["10.0.0.7"]).issued


def test_a_certificate_not_valid_yet_is_reissued(tmp_path: Path) -> None:
    settings, now = Settings(home=tmp_path), datetime.now(UTC)
    tls.ensure(settings, addresses=LAN, now=now)
    earlier = now - timedelta(days=1)  # the clock was set back
    again = tls.ensure(settings, addresses=LAN, now=earlier)
    assert again.issued and certs(again.cert)[0].not_valid_before_utc <= earlier


def test_a_replaced_ca_reissues_the_server_certificate(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    folder = tmp_path / tls.TLS_DIR
    tls.ensure(settings, addresses=LAN)
    old_ca = certs(folder / "ca.crt")[0]
    (folder / "ca.key").unlink()
    (folder / "ca.crt").unlink()
    again = tls.ensure(settings, addresses=LAN)
    server, ca = certs(again.cert)
    assert again.issued and ca != old_ca and ca == certs(folder / "ca.crt")[0]
    server.verify_directly_issued_by(ca)
    with pytest.raises(InvalidSignature):
        server.verify_directly_issued_by(old_ca)


def test_a_lost_ca_certificate_is_remade_from_its_key_and_the_chain_follows(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    folder = tmp_path / tls.TLS_DIR
    tls.ensure(settings, addresses=LAN)
    key_pem, old_ca = (folder / "ca.key").read_bytes(), certs(folder / "ca.crt")[0]
    (folder / "ca.crt").unlink()
    again = tls.ensure(settings, addresses=LAN)
    server, ca = certs(again.cert)
    assert (folder / "ca.key").read_bytes() == key_pem and ca.public_key() == old_ca.public_key()
    assert again.issued and ca != old_ca and ca == certs(folder / "ca.crt")[0]
    server.verify_directly_issued_by(ca)
    # a certificate of another key in its place: the key wins again
    foreign, _ = user_pair(tmp_path / "foreign", days=3000)
    (folder / "ca.crt").write_bytes(foreign.read_bytes())
    assert tls.ensure(settings, addresses=LAN).issued
    assert certs(folder / "ca.crt")[0].public_key() == old_ca.public_key()


def test_a_ca_near_its_end_is_resigned_with_the_same_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    now = datetime.now(UTC)
    first = tls.ensure(settings, addresses=LAN, now=now)
    old_ca = certs(tmp_path / tls.TLS_DIR / "ca.crt")[0]
    later = tls.ensure(settings, addresses=LAN, now=now + timedelta(days=3650 - 300))
    server, ca = certs(later.cert)
    assert later.issued and ca != old_ca and ca.public_key() == old_ca.public_key()
    assert ca.not_valid_after_utc >= server.not_valid_after_utc
    assert first.ca == later.ca


def test_a_torn_or_mismatched_server_pair_is_reissued(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    served = tls.ensure(settings, addresses=LAN)
    foreign = ec.generate_private_key(ec.SECP256R1())
    served.key.write_bytes(
        foreign.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    healed = tls.ensure(settings, addresses=LAN)
    assert healed.issued
    tls.server_context(healed)  # the pair loads: key and certificate match again
    served.cert.write_bytes(served.cert.read_bytes()[:100])
    assert tls.ensure(settings, addresses=LAN).issued


# -- the user's own certificate ----------------------------------------------------------------


def user_pair(folder: Path, name: str = "hub.example", days: int = 90) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_users_certificate_is_served_as_it_is(tmp_path: Path) -> None:
    cert, key = user_pair(tmp_path / "mine")
    settings = Settings(home=tmp_path / "home", tls_cert=cert, tls_key=key)
    served = tls.ensure(settings, addresses=LAN)
    assert (served.cert, served.key, served.ca) == (cert, key, None)
    assert served.user_supplied and not served.issued
    assert served.names == ("hub.example", "127.0.0.1")
    assert served.not_after == certs(cert)[0].not_valid_after_utc
    assert tls.inspect(settings) == served
    assert not (tmp_path / "home" / tls.TLS_DIR).exists()
    # the key may also sit in the certificate's own file
    both = tmp_path / "mine" / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    inside = tls.ensure(Settings(home=tmp_path / "home", tls_cert=both))
    assert inside.key == both and inside.names == served.names
    tls.server_context(inside)
    assert not (tmp_path / "home" / tls.TLS_DIR).exists()


def test_a_users_certificate_that_cannot_be_served_is_a_clear_config_error(
    tmp_path: Path,
) -> None:
    cert, _ = user_pair(tmp_path / "mine")
    _, other_key = user_pair(tmp_path / "mine", "other.example")
    home = tmp_path / "home"
    with pytest.raises(ConfigError, match=r"tls_key: .* is not the private key of"):
        tls.ensure(Settings(home=home, tls_cert=cert, tls_key=other_key))
    with pytest.raises(ConfigError, match=r"tls_cert: .*nope\.crt does not exist"):
        tls.ensure(Settings(home=home, tls_cert=tmp_path / "nope.crt"))
    with pytest.raises(ConfigError, match=r"tls_key: .*nope\.key does not exist"):
        tls.ensure(Settings(home=home, tls_cert=cert, tls_key=tmp_path / "nope.key"))
    with pytest.raises(ConfigError, match=r"tls_cert: .* holds no usable private key"):
        tls.ensure(Settings(home=home, tls_cert=cert))
    with pytest.raises(ConfigError, match=r"tls_cert: .* holds no readable PEM certificate"):
        tls.ensure(Settings(home=home, tls_cert=other_key))
    with pytest.raises(ConfigError, match="tls_key"):
        tls.inspect(Settings(home=home, tls_cert=cert, tls_key=other_key))
    assert not home.exists()


def test_inspect_creates_nothing_and_sees_what_ensure_made(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", https=True)
    assert tls.inspect(settings) is None
    assert not (tmp_path / "home").exists()
    served = tls.ensure(settings, addresses=LAN)
    files = {p.name: p.read_bytes() for p in (tmp_path / "home" / tls.TLS_DIR).iterdir()}
    seen = tls.inspect(settings)
    assert seen is not None and not seen.issued
    assert (seen.cert, seen.key, seen.ca, seen.names) == (
        served.cert,
        served.key,
        served.ca,
        served.names,
    )
    assert {p.name: p.read_bytes() for p in (tmp_path / "home" / tls.TLS_DIR).iterdir()} == files


def test_fingerprint_is_the_sha256_of_the_first_certificate(tmp_path: Path) -> None:
    served = tls.ensure(Settings(home=tmp_path), addresses=LAN)
    assert served.ca is not None
    ca = certs(served.ca)[0]
    digest = ca.fingerprint(hashes.SHA256())
    assert tls.fingerprint(served.ca) == ":".join(f"{b:02X}" for b in digest)
    assert tls.fingerprint(served.cert) != tls.fingerprint(served.ca)  # the chain's first: server
    with pytest.raises(ConfigError):
        tls.fingerprint(served.key)


# -- a real handshake --------------------------------------------------------------------------


@contextmanager
def tls_server(ctx: ssl.SSLContext) -> Iterator[int]:
    """Accept TLS connections on 127.0.0.1 and say hello on each, until the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"hello")
            except (ssl.SSLError, OSError):
                conn.close()  # a client that refused the certificate

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def hello(port: int, client: ssl.SSLContext, server_hostname: str) -> tuple[bytes, str | None]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname=server_hostname) as conn,
    ):
        return conn.recv(5), conn.version()


def test_a_client_that_trusts_the_hub_ca_verifies_the_server_by_name_and_by_ip(
    tmp_path: Path,
) -> None:
    served = tls.ensure(Settings(home=tmp_path), addresses=LAN)
    assert served.ca is not None
    ctx = tls.server_context(served)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    trusting = ssl.create_default_context(cafile=served.ca)
    with tls_server(ctx) as port:
        for name in ("localhost", "127.0.0.1", machine()):
            data, version = hello(port, trusting, name)
            assert data == b"hello" and version in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            hello(port, trusting, "not-the-hub.example")
        with pytest.raises(ssl.SSLCertVerificationError):
            hello(port, ssl.create_default_context(), "localhost")  # without the hub's CA


# -- hivecall doctor ---------------------------------------------------------------------------


def doctor(home: Path, **env: str) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["doctor"], env={"HIVECALL_HOME": str(home), **env})
    assert result.exit_code == 0, result.output
    rows: dict[str, str] = {}
    for line in result.output.splitlines():
        key, _, value = line.partition("  ")
        rows[key.strip()] = value.strip()
    return rows


def test_doctor_shows_https_and_the_certificate_without_making_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    off = doctor(home, HIVECALL_HTTPS="0")
    assert off["HTTPS"] == "off" and "certificate" not in off
    before = doctor(home, HIVECALL_HTTPS="1")
    assert before["HTTPS"] == "on" and before["certificate"].startswith("none yet")
    assert not (home / tls.TLS_DIR).exists()
    served = tls.ensure(Settings(home=home), addresses=LAN)
    assert served.ca is not None
    rows = doctor(home, HIVECALL_HTTPS="1")
    assert rows["certificate"] == f"hub CA ({served.ca})"
    assert rows["names"] == ", ".join(served.names) and "192.168.1.20" in rows["names"]
    assert rows["expires"] == f"{served.not_after:%Y-%m-%d} (396 days left)"
    assert rows["CA fingerprint"] == tls.fingerprint(served.ca)
    assert "PRIVATE KEY" not in "".join(rows.values())
    assert doctor(home, HIVECALL_HTTPS="0")["certificate"].startswith("hub CA")  # one exists
    cert, key = user_pair(tmp_path / "mine")
    mine = doctor(home, HIVECALL_TLS_CERT=str(cert), HIVECALL_TLS_KEY=str(key))
    assert mine["certificate"] == f"tls_cert ({cert})" and "CA fingerprint" not in mine
    assert mine["names"] == "hub.example, 127.0.0.1"
    broken = doctor(home, HIVECALL_TLS_CERT=str(tmp_path / "gone.crt"))
    assert broken["certificate"].startswith("unusable: tls_cert:")

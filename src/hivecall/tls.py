"""The hub's own certificate authority, for `hivecall serve --https`.

Phones give a page the microphone only over HTTPS, and a LAN address has no public certificate,
so the hub keeps a small CA of its own in HOME/tls (ca.crt is what a phone installs, once) and
issues itself a server certificate for every name and address it is reached at, renewed before
it expires or when the addresses change. A certificate the user supplies (tls_cert, tls_key: a
real domain, Tailscale) takes precedence and is used as it is.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hivecall.boundary import WILDCARD_HOSTS, hostname_of
from hivecall.errors import ConfigError
from hivecall.interfaces import lan_addresses
from hivecall.settings import Settings

TLS_DIR = "tls"  # under settings.home; mode 0700
CA_DAYS = 3650
SERVER_DAYS = 397  # Apple's limit for TLS server certificates
RENEW_BEFORE = timedelta(days=30)
SKEW = timedelta(minutes=5)  # not_before this far back, for phones whose clock runs late

_CA_MARGIN = timedelta(days=SERVER_DAYS)  # the CA outlives every certificate it issues
_BAD_CA_KEY = (
    "{path} is not an EC or RSA PEM private key without a password: move ca.key and ca.crt "
    "away to have the hub make a new CA (phones then install the new ca.crt)"
)

_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)

_IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ServerCert:
    cert: Path  # PEM chain: server certificate then the CA's (or the user's tls_cert)
    key: Path  # PEM private key, mode 0600 (or tls_key, or tls_cert holding the key)
    ca: Path | None  # the hub's CA certificate; None for the user's own certificate
    names: tuple[str, ...]  # SAN entries (DNS names, IP addresses as text), in order
    not_after: datetime  # aware UTC
    user_supplied: bool
    issued: bool  # this call created or re-issued the server certificate


# -- names -------------------------------------------------------------------------------------


def wanted_names(settings: Settings, addresses: Sequence[str]) -> list[str]:
    """Every name and address the hub is reached at, once each, in a stable order."""
    machine = socket.gethostname().lower().rstrip(".")
    names = ["localhost", "127.0.0.1", "::1"]
    if machine:
        names += [machine, f"{machine.split('.')[0]}.local"]
    names += addresses
    if settings.host not in WILDCARD_HOSTS:
        names.append(settings.host)
    names.append(urlsplit(settings.resolved_public_url).netloc)
    names += [n for n in settings.allowed_hosts.split(",") if n.strip() != "*"]
    return list(dict.fromkeys(n for n in map(_san_text, names) if n))


def _san_text(raw: str) -> str | None:
    """`raw` as it stands in a SAN (an address in its short form, a name in ASCII)."""
    name = hostname_of(raw)
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        return name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:  # not a name a certificate can hold
        return None


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _san(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in san if isinstance(n, x509.DNSName | x509.IPAddress)]


# -- the certificates --------------------------------------------------------------------------


def ensure(
    settings: Settings, *, addresses: Sequence[str] | None = None, now: datetime | None = None
) -> ServerCert:
    """The certificate to serve: the user's, or the hub's own, issued or renewed as needed."""
    if settings.tls_cert is not None:
        return _user_cert(settings.tls_cert, settings.tls_key)
    at, folder = _now(now), settings.home / TLS_DIR
    names = wanted_names(settings, lan_addresses() if addresses is None else addresses)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)  # mkdir's mode passes the umask, and the folder may be older
        ca_key, ca_cert = _ca(folder, at)
        chain = _current(folder)
        if chain is not None and _fresh(chain, ca_cert, names, at):
            return _served(folder, chain[0], issued=False)
        return _served(folder, _issue(folder, ca_key, ca_cert, names, at), issued=True)
    except OSError as e:
        msg = f"the hub's certificates in {folder} cannot be read or written: {e.strerror}"
        raise ConfigError(msg) from e


def inspect(settings: Settings) -> ServerCert | None:
    """What is there to serve now, creating and changing nothing (for `hivecall doctor`)."""
    if settings.tls_cert is not None:
        return _user_cert(settings.tls_cert, settings.tls_key)
    folder = settings.home / TLS_DIR
    try:
        chain = x509.load_pem_x509_certificates((folder / "server.crt").read_bytes())
    except (OSError, ValueError):
        return None
    return _served(folder, chain[0], issued=False)


def fingerprint(cert_path: Path) -> str:
    """SHA-256 of the file's first certificate, as phones show it: AB:CD:…"""
    return _first_cert(cert_path).fingerprint(hashes.SHA256()).hex(":").upper()


def server_context(cert: ServerCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_pair(ctx, cert.cert, cert.key)
    return ctx


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def _user_cert(cert_path: Path, key_path: Path | None) -> ServerCert:
    for setting, path in (("tls_cert", cert_path), ("tls_key", key_path)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{setting}: {path} does not exist or is not a file")
    first = _first_cert(cert_path, setting="tls_cert")
    _load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_path, key_path)
    key = key_path or cert_path
    return ServerCert(
        cert_path, key, None, tuple(_san(first)), first.not_valid_after_utc, True, False
    )


def _first_cert(path: Path, *, setting: str = "") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError) as e:
        label = f"{setting}: " if setting else ""
        raise ConfigError(f"{label}{path} holds no readable PEM certificate") from e


def _load_pair(ctx: ssl.SSLContext, cert_path: Path, key_path: Path | None) -> None:
    """Load the pair as the server will; a password-protected key fails instead of prompting."""
    try:
        ctx.load_cert_chain(cert_path, key_path, password=lambda: b"")
    except (OSError, ssl.SSLError) as e:
        if getattr(e, "reason", None) == "KEY_VALUES_MISMATCH":
            msg = f"tls_key: {key_path or cert_path} is not the private key of {cert_path}"
        elif key_path is None:
            msg = f"tls_cert: {cert_path} holds no usable private key (set tls_key to its file)"
        else:
            msg = f"tls_key: {key_path} is not a PEM private key without a password"
        raise ConfigError(msg) from e


def _served(folder: Path, cert: x509.Certificate, *, issued: bool) -> ServerCert:
    return ServerCert(
        cert=folder / "server.crt",
        key=folder / "server.key",
        ca=folder / "ca.crt",
        names=tuple(_san(cert)),
        not_after=cert.not_valid_after_utc,
        user_supplied=False,
        issued=issued,
    )


def _ca(folder: Path, at: datetime) -> tuple[_IssuerKey, x509.Certificate]:
    """The CA's key (made on first use) and certificate (re-signed with the same key when it is
    missing, is not the key's, or would end before a server certificate issued now)."""
    key_path, cert_path = folder / "ca.key", folder / "ca.crt"
    if not key_path.exists():
        _write(key_path, _key_pem(ec.generate_private_key(ec.SECP256R1())), 0o600, new=True)
    key = _issuer_key(key_path)
    try:
        cert: x509.Certificate | None = _first_cert(cert_path)
    except ConfigError:
        cert = None
    if cert is None or not _same_key(cert, key) or cert.not_valid_after_utc - at < _CA_MARGIN:
        cert = _self_sign(key, at)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return key, cert


def _issuer_key(path: Path) -> _IssuerKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(_BAD_CA_KEY.format(path=path)) from e
    if not isinstance(key, _IssuerKey):
        raise ConfigError(_BAD_CA_KEY.format(path=path))
    return key


def _self_sign(key: _IssuerKey, at: datetime) -> x509.Certificate:
    host = socket.gethostname().lower()[:40] or "this computer"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hivecall hub CA ({host})")])
    usage = _usage(key_cert_sign=True, crl_sign=True)
    return (
        _builder(name, name, key.public_key(), at - SKEW, at + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue(
    folder: Path, ca_key: _IssuerKey, ca: x509.Certificate, names: list[str], at: datetime
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    start = at - SKEW
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hivecall hub")])
    cert = (
        _builder(subject, ca.subject, key.public_key(), start, start + timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(map(_general_name, names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # Key first: a crash between the two leaves a pair that does not match, which the next
    # ensure() sees and re-issues; each file on its own is never torn.
    _write(folder / "server.key", _key_pem(key), 0o600)
    pem = serialization.Encoding.PEM
    _write(folder / "server.crt", cert.public_bytes(pem) + ca.public_bytes(pem), 0o644)
    return cert


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    start: datetime, end: datetime,
) -> x509.CertificateBuilder:  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _usage(**on: bool) -> x509.KeyUsage:
    return x509.KeyUsage(**{flag: on.get(flag, False) for flag in _USAGES})


def _current(folder: Path) -> list[x509.Certificate] | None:
    """The server chain on disk when it loads and its key is the certificate's."""
    try:
        chain = x509.load_pem_x509_certificates((folder / "server.crt").read_bytes())
        key = serialization.load_pem_private_key((folder / "server.key").read_bytes(), None)
    except (OSError, ValueError, TypeError):
        return None
    return chain if _same_key(chain[0], key) else None


def _fresh(
    chain: list[x509.Certificate], ca: x509.Certificate, names: list[str], at: datetime
) -> bool:
    cert = chain[0]
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return (
        chain[1:] == [ca]
        and cert.not_valid_before_utc <= at
        and cert.not_valid_after_utc - at > RENEW_BEFORE
        and set(names) <= set(_san(cert))
    )


def _same_key(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int, *, new: bool = False) -> None:
    """Write a temporary file beside `path` (with `mode` from its first byte), then move it in:
    a crash never leaves a torn file. `new`: never replace a file another process made first."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(tmp, flags, mode), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if new:
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def doctor_rows(settings: Settings) -> list[tuple[str, str]]:
    """`hivecall doctor`'s HTTPS rows."""
    rows = [("HTTPS", "on" if settings.https else "off")]
    try:
        served = inspect(settings)
        ca = fingerprint(served.ca) if served is not None and served.ca is not None else None
    except ConfigError as e:
        return [*rows, ("certificate", f"unusable: {e.message}")]
    if served is None:
        later = f"none yet: the hub's CA issues one in {settings.home / TLS_DIR} at start"
        return [*rows, ("certificate", later)] if settings.https else rows
    left = (served.not_after - _now(None)).days
    expiry = f"{served.not_after:%Y-%m-%d} " + (f"({left} days left)" if left >= 0 else "(expired)")
    source = f"tls_cert ({served.cert})" if served.user_supplied else f"hub CA ({served.ca})"
    rows += [("certificate", source), ("names", ", ".join(served.names)), ("expires", expiry)]
    return rows + ([("CA fingerprint", ca)] if ca else [])

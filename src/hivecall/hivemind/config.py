"""The listener's settings, checked before anything starts (also what `doctor` reports)."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from hivecall.boundary import origin_of
from hivecall.errors import ConfigError
from hivecall.hivemind import noise
from hivecall.hivemind_protocol.crypto import Cipher
from hivecall.hivemind_protocol.encodings import Encoding
from hivecall.settings import Settings

PRE_HANDSHAKE_MAX = 8192  # bytes a frame may have before the handshake
PROTOCOLS = (1, 3)  # what hivemind_min_protocol may say (v2 was never a handshake of its own)


def parse_ciphers(text: str) -> tuple[Cipher, ...]:
    try:
        out = tuple(Cipher(c.strip()) for c in text.split(",") if c.strip())
    except ValueError as e:
        raise ConfigError("hivemind_ciphers: use AES-GCM and/or CHACHA20-POLY1305") from e
    if not out:
        raise ConfigError("hivemind_ciphers names no cipher")
    return out


def parse_encodings(text: str) -> tuple[Encoding, ...]:
    try:
        out = tuple(Encoding(e.strip()) for e in text.split(",") if e.strip())
    except ValueError as e:
        names = ", ".join(Encoding)
        raise ConfigError(f"hivemind_encodings: each must be one of {names}") from e
    if not out:
        raise ConfigError("hivemind_encodings names no encoding")
    return out


def check(settings: Settings) -> None:
    """Refuse HiveMind settings that cannot work (before anything starts)."""
    parse_ciphers(settings.hivemind_ciphers)
    parse_encodings(settings.hivemind_encodings)
    if not 0 <= settings.hivemind_port <= 65535:
        raise ConfigError("hivemind_port must be between 0 and 65535")
    if settings.hivemind_port and settings.hivemind_port == settings.port:
        raise ConfigError("hivemind_port must differ from port")
    if settings.hivemind_max_frame_bytes < PRE_HANDSHAKE_MAX:
        raise ConfigError(f"hivemind_max_frame_bytes must be at least {PRE_HANDSHAKE_MAX}")
    if settings.hivemind_handshake_timeout <= 0:
        raise ConfigError("hivemind_handshake_timeout must be positive")
    if settings.hivemind_min_protocol not in PROTOCOLS:
        raise ConfigError(
            "hivemind_min_protocol must be 1 (v1 and v3 clients) or 3 (v3 Noise clients only)"
        )
    if settings.hivemind_min_protocol == 3 and not noise.argon2_available():
        raise ConfigError(
            "hivemind_min_protocol 3 needs protocol v3, and this cryptography has no argon2id "
            "(44 or newer needed)"
        )
    if settings.hivemind_require_tls and settings.hivemind_tls_cert is None:
        raise ConfigError(
            "hivemind_require_tls is on but hivemind_tls_cert is not set: give the listener a "
            "certificate (HIVECALL_HIVEMIND_TLS_CERT) or turn hivemind_require_tls off"
        )
    allowed_origins(settings)
    tls_context(settings)


def allowed_origins(settings: Settings) -> frozenset[str]:
    """The web page origins that may open the listener (`hivemind_allowed_origins`)."""
    found: set[str] = set()
    for raw in (part.strip() for part in settings.hivemind_allowed_origins.split(",")):
        if not raw:
            continue
        origin, parts = origin_of(raw), urlsplit(raw)
        bare = parts.path in ("", "/") and not (parts.query or parts.fragment or "@" in raw)
        if origin is None or not bare:
            raise ConfigError(
                f"hivemind_allowed_origins: {raw!r} is not an origin (https://host[:port])"
            )
        found.add(origin)
    return frozenset(found)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context when a certificate is configured (wss://), else None."""
    if settings.hivemind_tls_cert is None:
        if settings.hivemind_tls_key is not None:
            raise ConfigError("hivemind_tls_key needs hivemind_tls_cert")
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.hivemind_tls_cert, settings.hivemind_tls_key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            "hivemind_tls_cert / hivemind_tls_key cannot be loaded (missing, unreadable, or "
            "not a matching PEM certificate and key)"
        ) from e
    return ctx

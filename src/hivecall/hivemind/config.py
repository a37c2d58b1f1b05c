"""The listener's settings, checked before anything starts (also what `doctor` reports)."""

from __future__ import annotations

import ssl

from hivecall.errors import ConfigError
from hivecall.hivemind.crypto import Cipher
from hivecall.hivemind.encodings import Encoding
from hivecall.settings import Settings

PRE_HANDSHAKE_MAX = 8192  # bytes a frame may have before the handshake


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
    tls_context(settings)


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

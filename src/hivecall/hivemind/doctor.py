"""What `hivecall doctor` says about the HiveMind listener: where it listens, TLS, the
protocols it offers, its Noise key (what clients pin) and how many clients may connect.

Read from the settings, HIVECALL_HOME and the store only: nothing is started or created.
"""

from __future__ import annotations

from sqlalchemy import func, select

from hivecall.errors import ConfigError
from hivecall.hivemind import noise
from hivecall.hivemind.config import check, parse_ciphers, parse_encodings
from hivecall.settings import Settings
from hivecall.store import Store
from hivecall.store.models import HiveClient


async def report(settings: Settings, store: Store | None) -> list[tuple[str, str]]:
    """(label, value) rows, in the shape doctor prints; `store` None when it cannot open."""
    if not settings.hivemind_port:
        return [("HiveMind listener", "off (hivemind_port is 0)")]
    try:
        check(settings)
    except ConfigError as e:
        return [("HiveMind listener", f"will not start: {e.message}")]
    tls = settings.hivemind_tls_cert is not None
    host = settings.hivemind_host or settings.host
    rows = [
        ("HiveMind listener", f"{'wss' if tls else 'ws'}://{host}:{settings.hivemind_port}"),
        (
            "HiveMind TLS",
            f"on ({settings.hivemind_tls_cert})"
            if tls
            else "off (every frame is encrypted by the protocol; set hivemind_tls_cert for wss)",
        ),
        ("HiveMind protocols", protocols(settings)),
        ("HiveMind Noise key", noise_key(settings)),
    ]
    if store is None:
        rows.append(("HiveMind clients", "unknown (the store cannot be opened)"))
    else:
        async with store.session() as s:
            count = await s.scalar(select(func.count()).select_from(HiveClient)) or 0
        rows.append(
            (
                "HiveMind clients",
                f"{count} registered"
                if count
                else "none yet: add one with `hivecall hivemind add-client`",
            )
        )
    return rows


def protocols(settings: Settings) -> str:
    ciphers = ", ".join(parse_ciphers(settings.hivemind_ciphers))
    encodings = ", ".join(parse_encodings(settings.hivemind_encodings))
    framing = "binarized or JSON frames" if settings.hivemind_binarize else "JSON frames"
    v1 = f"v1 password handshake ({ciphers}; {encodings}; {framing})"
    if settings.hivemind_min_protocol >= 3:
        v1 = "v1 off (hivemind_min_protocol 3)"
    if not noise.argon2_available():
        return f"{v1}; v3 off: this cryptography has no argon2id (44 or newer needed)"
    return f"{v1}; v3 {noise.PROTOCOL_NAME} (argon2id PSK)"


def noise_key(settings: Settings) -> str:
    """The public half of the listener's static key, as clients pin it (never the private)."""
    path = settings.home / noise.STATIC_KEY_FILE
    if not path.exists():
        return "made on the listener's first start"
    try:
        return noise.public_bytes(noise.load_static_key(settings.home)).hex()
    except (OSError, ValueError):
        return f"{path} cannot be read (move it away to make a new one; clients must re-pin)"

"""Where the hub's web port listens, and the URL other devices reach it at.

Phones get a microphone only from a secure context, which on the network means HTTPS. With
`https` on, the one port speaks TLS on the machine's network addresses and stays plain HTTP on
loopback, so this computer's browser (for which 127.0.0.1 is already a secure context) needs no
certificate. The two cannot share one wildcard socket, so a wildcard host is served as each
network address on its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from hivecall.interfaces import lan_addresses
from hivecall.settings import Settings

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
LOOPBACK = "127.0.0.1"
# Store meta key: the URL phones reach the running hub at (phone_url), for `hivecall pair`.
PHONE_URL = "phone_url"


@dataclass(frozen=True)
class Listeners:
    plain: tuple[str, ...]  # addresses served over plain HTTP
    tls: tuple[str, ...]  # addresses served over HTTPS
    warning: str | None = None  # why HTTPS is on but reaches no phone


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bindable(addresses: Sequence[str]) -> list[str]:
    """The IPv4 network addresses of `addresses` (what a wildcard host serves over TLS)."""
    out: list[str] = []
    for a in addresses:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_loopback and not ip.is_link_local and a not in out:
            out.append(a)
    return out


def plan(settings: Settings, lan: Sequence[str]) -> Listeners:
    """The addresses of the web port, given this machine's network addresses `lan`."""
    host = settings.host
    if not settings.https:
        return Listeners(plain=(host,), tls=())
    if is_loopback(host):
        return Listeners(
            plain=(host,),
            tls=(),
            warning=(
                f"HTTPS is on but the hub listens on {host} only, which no phone can reach: "
                "serve it on the network with --host 0.0.0.0"
            ),
        )
    if host in WILDCARD_HOSTS:
        tls = tuple(bindable(lan))
        warning = None if tls else "HTTPS is on but this machine has no network address yet"
        return Listeners(plain=(LOOPBACK,), tls=tls, warning=warning)
    return Listeners(plain=(LOOPBACK,), tls=(host,))


def phone_url(settings: Settings, lan: Sequence[str] | None = None) -> str:
    """The URL phones and invited people open: public_url when set; with HTTPS on, the first
    network address it serves; else the hub's own URL (loopback or the listening address)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if settings.https:
        tls = plan(settings, lan_addresses() if lan is None else lan).tls
        if tls:
            return f"https://{tls[0]}:{settings.port}"
    return settings.resolved_public_url

"""Loopback ICE candidates for the hub's side of a local call.

aioice (under aiortc 1.16) gathers host candidates from every interface except 127.0.0.1, and has
no option to keep it. A browser on the hub's own machine can then only meet the hub through a LAN
address, and on a machine with no network at all (or a loopback-only namespace) not at all.
Adding 127.0.0.1 costs one candidate pair that a remote browser simply fails to reach.
"""

from __future__ import annotations

import aioice.ice

LOOPBACK = "127.0.0.1"


def allow_loopback_ice() -> None:
    """Make aioice offer 127.0.0.1 too (process-wide, idempotent)."""
    original = aioice.ice.get_host_addresses
    if getattr(original, "hivecall_loopback", False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and LOOPBACK not in addresses:
            addresses.append(LOOPBACK)
        return addresses

    get_host_addresses.hivecall_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses

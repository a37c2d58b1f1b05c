"""This machine's network addresses: what phones on the LAN reach the hub at.

Read from the kernel (Linux: the interface ioctls and /proc/net/if_inet6; elsewhere the source
address the routing table picks), with no dependency and nothing sent.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from pathlib import Path

_SIOCGIFFLAGS, _SIOCGIFADDR, _IFF_UP = 0x8913, 0x8915, 0x1
# /proc/net/if_inet6 flags of addresses not to name: temporary (they rotate), DAD failed,
# deprecated, tentative.
_IFA_SKIP = 0x01 | 0x08 | 0x20 | 0x40


def lan_addresses() -> list[str]:
    """This machine's addresses on interfaces that are up, without loopback and link-local
    ones; [] when they cannot be read."""
    try:
        found = _linux_addresses() if sys.platform.startswith("linux") else _routed_address()
        return list(dict.fromkeys(a for a in found if _is_lan(ipaddress.ip_address(a))))
    except (OSError, ValueError):
        return []


def _is_lan(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def _linux_addresses() -> list[str]:
    import fcntl  # POSIX only: imported where it is used

    def ioctl(sock: socket.socket, request: int, name: str) -> bytes | None:
        try:
            return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
        except OSError:  # the interface went away, or has no IPv4 address
            return None

    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        names = [name for _, name in socket.if_nameindex()]
        up = [n for n in names if _is_up(ioctl(sock, _SIOCGIFFLAGS, n))]
        for name in up:
            if (reply := ioctl(sock, _SIOCGIFADDR, name)) is not None:
                found.append(socket.inet_ntoa(reply[20:24]))  # sockaddr_in's address
    return found + _inet6(set(up))


def _is_up(ifreq: bytes | None) -> bool:
    return ifreq is not None and bool(struct.unpack_from("H", ifreq, 16)[0] & _IFF_UP)


def _inet6(up: set[str]) -> list[str]:
    """Global (and unique local) IPv6 addresses of the interfaces in `up`."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    found: list[str] = []
    for parts in (line.split() for line in lines):
        global_scope = len(parts) == 6 and parts[5] in up and parts[3] == "00"
        if global_scope and not int(parts[4], 16) & _IFA_SKIP:
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(parts[0]))))
    return found


def _routed_address() -> list[str]:
    # connect() on UDP sends nothing: it only asks the routing table for the source address.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))
        return [str(sock.getsockname()[0])]

"""A non-loopback address for tests, on a virtual interface of the loopback-only namespace.

Phones reach the hub on a network address, where browsers and TLS behave differently from
127.0.0.1. Inside the namespace of scripts/with-netns.sh the tests may make one: a dummy
interface carries it (or, on kernels without the dummy module, one end of a veth pair whose
both ends stay in the namespace), nothing leaves the namespace, and only the address made here
is used. Outside that namespace it is never made (the host's network is not the tests' to
change).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

# TEST-NET-2 (RFC 5737): documentation addresses, routed nowhere.
NETWORK = "198.51.100"
_numbers = itertools.count(2)


def unavailable() -> str | None:
    if os.environ.get("HIVECALL_TEST_NETNS") != "1":
        return "needs the loopback-only network namespace (make test runs in one, as root)"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and iproute2 inside the namespace"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("HIVECALL_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"required but cannot run: {reason}")
    pytest.skip(reason)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def lan_address() -> Iterator[str]:
    """A fresh address on a dummy interface of the namespace, removed afterwards."""
    if reason := unavailable():
        skip_or_fail(reason)
    n = next(_numbers)
    name, address = f"hctest{n}", f"{NETWORK}.{n}"
    try:
        _ip("link", "add", name, "type", "dummy")
    except subprocess.CalledProcessError:  # "Unknown device type": no dummy module
        _ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        _ip("link", "set", f"{name}p", "up")
    try:
        _ip("addr", "add", f"{address}/24", "dev", name)
        _ip("link", "set", name, "up")
        yield address
    finally:
        _ip("link", "del", name)

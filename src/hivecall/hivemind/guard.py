"""What keeps the v1 password handshake from being replayed or forced in a loop.

A v1 client envelope (`hex(iv8 + SHA256(iv8 + password))[:48]`) travels in the clear on ws://,
next to the access key in the URL. Replayed, it verifies again, and each time the hub pays one
PBKDF2 (100,000 rounds, ~25 ms of CPU) for a key the replayer cannot use. So:

- `Envelopes` remembers each client's verified envelope ivs for WINDOW seconds (at most
  PER_CLIENT of them): one seen again is refused before any key is derived. A real client makes
  a fresh random iv for every shake it sends (0.4.4 and the 1.2 line both do).
- `Failures` counts handshakes that did not finish (wrong or replayed envelope, a key derived
  and never used, a timeout, an unknown access key) per access key and per peer address; past
  the limit a connection from there is closed at once, before anything is derived.

Failures are counted when a connection ends, not when it starts: many satellites (or the
benchmark's 32 clients) may shake at once from one address, and only a fresh envelope, which
takes the password to make, costs a derivation. The memory is the hub process's own.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from hivecall.errors import TooManyRequests
from hivecall.ratelimit import Limiter

WINDOW = 600.0  # seconds a verified envelope is remembered
PER_CLIENT = 256  # envelopes remembered per client (its most recent)
FAILURE_WINDOW = 60.0
FAILURES_PER_KEY = 5  # unfinished handshakes per access key in FAILURE_WINDOW
FAILURES_PER_ADDRESS = 20  # per peer address (NAT: several satellites may share one)


class Envelopes:
    """Verified v1 client envelope ivs, per client, for WINDOW seconds."""

    def __init__(
        self,
        *,
        window: float = WINDOW,
        per_client: int = PER_CLIENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.per_client = per_client
        self.clock = clock
        self._seen: dict[str, OrderedDict[bytes, float]] = {}

    def first_use(self, client_id: str, iv: bytes) -> bool:
        """Record `iv` for the client; False when it was seen within the window (a replay)."""
        now = self.clock()
        seen = self._seen.setdefault(client_id, OrderedDict())
        while seen and (now - next(iter(seen.values())) >= self.window):
            seen.popitem(last=False)  # oldest first: insertion order is time order
        if iv in seen:
            return False
        seen[iv] = now
        while len(seen) > self.per_client:
            seen.popitem(last=False)
        return True

    def retain(self, client_ids: Iterable[str]) -> None:
        """Forget the envelopes of deleted clients."""
        keep = set(client_ids)
        for gone in [c for c in self._seen if c not in keep]:
            del self._seen[gone]


class Failures:
    """Unfinished handshakes per access key (its hash) and per peer address."""

    def __init__(
        self,
        *,
        per_key: int = FAILURES_PER_KEY,
        per_address: int = FAILURES_PER_ADDRESS,
        window: float = FAILURE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        why, code = "too many failed HiveMind handshakes", "hivemind_handshakes_limited"
        self.by_key = Limiter(limit=per_key, window=window, message=why, code=code, clock=clock)
        self.by_address = Limiter(
            limit=per_address, window=window, message=why, code=code, clock=clock
        )

    @staticmethod
    def _full(limiter: Limiter, key: str) -> bool:
        try:
            mark = limiter.begin(key)  # a peek: counted, then taken back at once
        except TooManyRequests:
            return True
        limiter.forgive(key, mark)
        return False

    def address_blocked(self, address: str) -> bool:
        return self._full(self.by_address, address)

    def key_blocked(self, key_hash: str) -> bool:
        return self._full(self.by_key, key_hash)

    def failed(self, address: str, key_hash: str | None) -> None:
        """One unfinished handshake from `address` (with a known access key, or None)."""
        for limiter, key in ((self.by_address, address), (self.by_key, key_hash)):
            if key is None:
                continue
            with contextlib.suppress(TooManyRequests):  # full: the next one is closed at once
                limiter.begin(key)

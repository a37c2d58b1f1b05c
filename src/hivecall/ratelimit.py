"""Failed attempts per source address in a sliding window, in memory, per hub process.

Used for pairing codes (pairing.py) and for wrong tokens (auth.py). An attempt is counted when
it starts, in the same step as the check (there is no await between them), so N parallel wrong
guesses cannot all pass the check before the first of them fails; an attempt that succeeds is
taken back (`forgive`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from hivecall.errors import TooManyRequests


class Limiter:
    def __init__(
        self,
        *,
        limit: int,
        window: float,
        message: str,
        code: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.message = message
        self.code = code
        self.clock = clock
        self._attempts: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        for k in [k for k, q in self._attempts.items() if not q or now - q[-1] >= self.window]:
            del self._attempts[k]  # forget addresses whose attempts are all old
        q = self._attempts.setdefault(key, deque())
        while q and now - q[0] >= self.window:
            q.popleft()
        return q

    def begin(self, key: str) -> float:
        """Count one attempt from `key`, or raise 429 if it has had `limit` in the window.

        Returns the attempt's mark, for `forgive`.
        """
        q = self._recent(key)
        if len(q) >= self.limit:
            wait = self.window - (self.clock() - q[0])
            raise TooManyRequests(self.message, retry_after=int(wait) + 1, code=self.code)
        mark = self.clock()
        q.append(mark)
        return mark

    def forgive(self, key: str, mark: float) -> None:
        """The attempt `mark` succeeded: it does not count against `key`."""
        q = self._attempts.get(key)
        if q is not None and mark in q:
            q.remove(mark)

"""Rate limits counted in this process's memory, one allowance per key (a credential, an
address): requests a window allows, and how many may come at once.

The generic cell rate algorithm keeps one number per key, the moment its allowance is next
fully spent, so a check costs a dictionary lookup. Servers of a fleet each count their own:
a key served by N processes may make up to N times its allowance (a shared count would cost
a database write per request).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Hashable


class RateLimiter:
    """At most ``requests`` per ``window_seconds`` for each key, ``burst`` of them at once."""

    _MAX_KEYS = 100_000

    def __init__(self, requests: int, window_seconds: float, *, burst: int | None = None) -> None:
        if requests < 1 or window_seconds <= 0:
            raise ValueError("a rate limit needs at least one request per positive window")
        self.requests, self.window_seconds = requests, window_seconds
        self.interval = window_seconds / requests
        self.tolerance = self.interval * max(burst or requests, 1)
        # Per key, when its allowance is spent: earlier than now means a full allowance.
        self._spent_at: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` may make a request (0: now); counts nothing."""
        now = time.monotonic()
        with self._lock:
            spent_at = max(self._spent_at.get(key, now), now)
        return max(0.0, spent_at + self.interval - self.tolerance - now)

    def take(self, key: Hashable) -> float:
        """Count one request of ``key`` if its allowance has room and return 0; otherwise
        count nothing and return the seconds until it has room."""
        now = time.monotonic()
        with self._lock:
            spent_at = max(self._spent_at.get(key, now), now) + self.interval
            wait = spent_at - self.tolerance - now
            if wait > 0:
                return wait
            self._store(key, spent_at, now)
            return 0.0

    def record(self, key: Hashable) -> None:
        """Count one event of ``key`` whatever its allowance (a failure that already
        happened)."""
        now = time.monotonic()
        with self._lock:
            self._store(key, max(self._spent_at.get(key, now), now) + self.interval, now)

    def _store(self, key: Hashable, spent_at: float, now: float) -> None:
        spent = self._spent_at
        if key not in spent and len(spent) >= self._MAX_KEYS:
            # A key whose allowance is full again is the same as one never seen.
            self._spent_at = spent = {k: t for k, t in spent.items() if t > now}
            if len(spent) >= self._MAX_KEYS:  # that many busy keys: forget the oldest half
                for stale in list(spent)[: len(spent) // 2]:
                    del spent[stale]
        spent[key] = spent_at


def whole_seconds(wait: float) -> int:
    """A wait as the whole seconds of a ``Retry-After`` header (never 0: that means now)."""
    return max(1, math.ceil(wait))

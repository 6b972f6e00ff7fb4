"""Capped exponential backoff with full jitter, for reconnect attempts.

Full jitter (each wait uniform in ``[0, min(cap, base * 2**n)]``) rather than a fixed
doubling: when a broker restarts, thousands of devices lose their connection in the same
instant, and waits that share a schedule would bring them back in the same instant too.
"""

from __future__ import annotations

import random

# 2**40 * any sane base is far beyond any cap; stop growing the exponent there so a device
# retrying for years never overflows a float.
_MAX_EXPONENT = 40


class Backoff:
    """Delays for consecutive failed attempts; :meth:`reset` after a good connection.

    Args:
        base: the first step, seconds.
        cap: the largest step, seconds.
        rng: the random source (injectable so tests are deterministic).
    """

    def __init__(self, *, base: float = 0.5, cap: float = 30.0, rng: random.Random) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self._rng = rng
        self.failures = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap, self.base * 2.0 ** min(self.failures, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

"""Capped exponential backoff with jitter: the one implementation the SDK's reconnects,
the monitor's broker link, its database writer and its alert deliveries all use.

Step n is ``min(cap, base * 2**n)``. Two jitter shapes:

* full jitter (the default: each wait uniform in ``[0, step]``), for reconnects: when a
  broker restarts, thousands of devices lose their connection in the same instant, and
  waits that share a schedule would bring them back in the same instant too;
* proportional jitter (``spread=0.2``: the step scaled by a factor in ``[0.8, 1.2]``,
  never above ``cap``), for retries whose wait should stay near the schedule (a database
  write, an alert delivery) while several replicas still drift apart.
"""

from __future__ import annotations

import random

# 2**40 * any sane base is far beyond any cap; stop growing the exponent there so a device
# retrying for years never overflows a float.
_MAX_EXPONENT = 40


def step(failures: int, *, base: float, cap: float) -> float:
    """The un-jittered wait after ``failures`` consecutive failures (0 = the first)."""
    return min(cap, base * 2.0 ** min(max(failures, 0), _MAX_EXPONENT))


def spread_delay(failures: int, *, base: float, cap: float, factor: float) -> float:
    """The wait for ``failures`` with a proportional jitter ``factor`` chosen by the caller
    (pure, so a caller that stores its attempt count computes it the same every time)."""
    return min(cap, step(failures, base=base, cap=cap) * factor)


class Backoff:
    """Delays for consecutive failed attempts; :meth:`reset` after a success.

    Args:
        base: the first step, seconds.
        cap: the largest step, seconds.
        rng: the random source (injectable so tests are deterministic).
        spread: ``None`` for full jitter; else proportional jitter of ``± spread``.
    """

    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 30.0,
        rng: random.Random,
        spread: float | None = None,
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        if spread is not None and not 0 <= spread < 1:
            raise ValueError(f"backoff spread must be in [0, 1), got {spread}")
        self.base = base
        self.cap = cap
        self._rng = rng
        self._spread = spread
        self.failures = 0

    def ceiling(self) -> float:
        """The un-jittered step of the next delay."""
        return step(self.failures, base=self.base, cap=self.cap)

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        if self._spread is None:
            delay = self._rng.uniform(0.0, self.ceiling())
        else:
            factor = self._rng.uniform(1 - self._spread, 1 + self._spread)
            delay = spread_delay(self.failures, base=self.base, cap=self.cap, factor=factor)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

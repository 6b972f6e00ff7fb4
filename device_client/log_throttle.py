"""At most one log line per key per period, counting what was held back.

Bad input from the network arrives at network speed and user callbacks can fail on
every heartbeat; logging each would turn one misbehaving peer into a disk-filling
flood. The decision is pure (time passed in), so the SDK and the monitor share it.
"""

from __future__ import annotations

from typing import Final

# Keys can come from the network (topics, device ids): past this many, forget them all
# rather than grow without bound under hostile key churn.
MAX_KEYS: Final = 10_000


class LogThrottle:
    """Says whether a line for ``key`` may be logged ``now``; counts the ones it refuses."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self._period:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if key not in self._last and len(self._last) >= MAX_KEYS:
            self._last.clear()
            self._suppressed.clear()
        self._last[key] = now
        return True

    def take_suppressed(self, key: str) -> int:
        """How many lines for ``key`` were refused since it was last allowed; resets it."""
        return self._suppressed.pop(key, 0)

    def note(self, key: str) -> str:
        """`` (N similar suppressed)`` to append to the allowed line, or nothing."""
        count = self.take_suppressed(key)
        return f" ({count} similar suppressed)" if count else ""

"""When to send heartbeats: slots on a fixed grid, never drifting, never bursting.

Rules:

* Slot ``k`` of a grid is ``anchor + k * interval``. The next slot is computed from the
  grid, not from when the previous beat actually went out, so timer latency never
  accumulates: after hours the device still beats on its grid.
* After a stall (suspended VM, blocked loop, slow metrics callback) the slots that were
  missed are skipped: one beat goes out, then the grid continues. A burst of catch-up
  beats would tell the monitor nothing and load the broker.
* Jitter delays each beat by a random amount below ``min(jitter, interval / 2)`` after its
  slot; the slot itself stays on the grid, so jitter does not drift either.
* A connection starts a grid whose first slot is "now": the first beat goes out at once.
* A new interval applies within one beat: the next beat comes at the earlier of the slot
  already planned and ``last beat + new interval`` (at once if that is already past), and
  reports the new interval. Shortening therefore takes effect immediately; lengthening
  still delivers the planned beat, which tells the monitor about the longer interval
  before the longer silence starts.
"""

from __future__ import annotations

import math
import random


class BeatSchedule:
    """Heartbeat timing for one connection. Time is a monotonic clock passed in."""

    def __init__(self, interval: float, *, jitter: float = 0.0, rng: random.Random) -> None:
        self.interval = interval
        self.jitter = jitter
        self._rng = rng
        self._anchor: float | None = None
        self._k = 0
        self._offset = 0.0
        self.last_slot: float | None = None

    @property
    def running(self) -> bool:
        return self._anchor is not None

    @property
    def next_slot(self) -> float | None:
        if self._anchor is None:
            return None
        return self._anchor + self._k * self.interval

    @property
    def due_at(self) -> float | None:
        slot = self.next_slot
        return None if slot is None else slot + self._offset

    def is_due(self, now: float) -> bool:
        due = self.due_at
        return due is not None and now >= due

    def start(self, now: float) -> None:
        """Begin a grid whose first slot is ``now``."""
        self._anchor = now
        self._k = 0
        self._offset = 0.0
        self.last_slot = None

    def stop(self) -> None:
        self._anchor = None
        self.last_slot = None

    def sent(self, now: float) -> None:
        """Record that the beat for the current slot went out at ``now``."""
        if self._anchor is None:
            return
        self.last_slot = self._anchor + self._k * self.interval
        # The first slot after now; normally k + 1, more after a stall (skipped slots).
        self._k = max(self._k + 1, math.floor((now - self._anchor) / self.interval) + 1)
        self._offset = self._sample_offset()

    def set_interval(self, interval: float, now: float) -> None:
        """Switch to ``interval``; see the module rules for when the next beat comes."""
        planned = self.next_slot
        self.interval = interval
        if planned is None:
            return
        base = self.last_slot if self.last_slot is not None else now
        candidate = base + interval
        if candidate <= now:
            self._anchor, self._offset = now, 0.0
        elif candidate < planned:
            self._anchor, self._offset = candidate, self._sample_offset()
        else:
            # Keep the planned beat (with its jitter) and continue the new grid from it.
            self._anchor = planned
        self._k = 0

    def _sample_offset(self) -> float:
        bound = min(self.jitter, self.interval / 2)
        return self._rng.uniform(0.0, bound) if bound > 0 else 0.0

"""Uptime from the transitions table: pure arithmetic, time passed in.

The rule (also in docs/operations.md):

* time in ``online`` or ``late`` is **up** (a late device is still beating, just slowly);
* time in ``stale``, ``offline`` or ``lost`` is **down**;
* time in ``maintenance`` or ``unknown`` (not confirmed since a monitor restart), and time
  before the device's first transition, is **not counted** either way;
* percentage = up / (up + down); ``None`` when nothing was counted in the window.

The state at the start of a window is the ``new_state`` of the last transition before
it. The monitor's own downtime is not visible in the table: a device keeps the state it
had when the monitor stopped until the monitor's next verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

UP_STATES: Final = frozenset({"online", "late"})
DOWN_STATES: Final = frozenset({"stale", "offline", "lost"})


@dataclass(frozen=True, slots=True)
class Uptime:
    up_seconds: float
    down_seconds: float

    @property
    def counted_seconds(self) -> float:
        return self.up_seconds + self.down_seconds

    @property
    def percent(self) -> float | None:
        counted = self.counted_seconds
        if counted <= 0:
            return None
        return 100.0 * self.up_seconds / counted


def uptime(
    state_before: str | None,
    changes: Sequence[tuple[float, str]],
    *,
    start: float,
    end: float,
) -> Uptime:
    """Up and down seconds in ``[start, end)``.

    Args:
        state_before: the device's state at ``start`` (None: not tracked yet).
        changes: ``(at, new_state)`` in time order; entries outside the window are
            clipped (an entry before ``start`` sets the state at ``start``).
        start: window start, epoch seconds.
        end: window end, epoch seconds.
    """
    up = down = 0.0
    state = state_before
    cursor = start
    for at, new_state in changes:
        if at <= start:
            state = new_state
            continue
        if at >= end:
            break
        up, down = _add(state, at - cursor, up, down)
        state, cursor = new_state, at
    if end > cursor:
        up, down = _add(state, end - cursor, up, down)
    return Uptime(up, down)


def _add(state: str | None, seconds: float, up: float, down: float) -> tuple[float, float]:
    if state in UP_STATES:
        return up + seconds, down
    if state in DOWN_STATES:
        return up, down + seconds
    return up, down

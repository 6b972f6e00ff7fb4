"""How transitions reach the log: a line each while they are few, counts when they are many.

A line per transition is what an operator wants when a few devices change state. When
a broker outage or a power cut makes 100,000 devices late in the same tick, 100,000
lines are unreadable and formatting them was the largest single cost of handling the
transitions (measured with ``bench/bench_monitor.py``'s detection latency). A fleet that
connects over a ramp, or shuts down device by device, arrives in many small batches
instead, and floods the log just as well (a demo's banner scrolled away under 400 lines).

So the budget is per time window, not per batch: the first :data:`LOG_EACH_UP_TO`
transitions of a window get a line each; the rest of the window is counted per kind
(old state, new state, reason) and logged as one INFO line per kind with a count and the
first few device ids when the window ends. A batch larger than the budget is a mass
event and is summarised at once. Every device's line is still there at DEBUG; the
transitions table and the status topics carry each transition regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from monitor.liveness.states import Transition

# Transitions logged a line each per window (and the largest batch logged that way).
LOG_EACH_UP_TO: Final = 20
# The window, seconds of the monotonic clock.
WINDOW: Final = 10.0
_IDS_SHOWN: Final = 5

_Kind = tuple[str, str, str]  # old state, new state, reason


def _line(tr: Transition) -> tuple[str, str, str, str]:
    return (tr.device_id, tr.old.value if tr.old else "new", tr.new.value, tr.reason.value)


class TransitionLog:
    """Logs transitions within a per-window line budget; ``now`` is passed in."""

    def __init__(
        self, log: logging.Logger, *, each_up_to: int = LOG_EACH_UP_TO, window: float = WINDOW
    ) -> None:
        self._log = log
        self._each_up_to = each_up_to
        self._window = window
        self._window_start: float | None = None
        self._lines = 0  # individual lines logged in this window
        self._held: dict[_Kind, list[str]] = {}  # over budget in this window

    def log(self, transitions: Sequence[Transition], now: float) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        self.flush(now)
        if self._window_start is None:
            self._window_start = now
        if len(transitions) > self._each_up_to:
            self._summarise(_grouped(transitions))
        else:
            for tr in transitions:
                if self._lines < self._each_up_to:
                    self._lines += 1
                    self._log.info("device %s: %s -> %s (%s)", *_line(tr))
                else:
                    device_id, old, new, reason = _line(tr)
                    self._held.setdefault((old, new, reason), []).append(device_id)
                    self._log.debug("device %s: %s -> %s (%s)", device_id, old, new, reason)
            return
        if self._log.isEnabledFor(logging.DEBUG):
            for tr in transitions:
                self._log.debug("device %s: %s -> %s (%s)", *_line(tr))

    def flush(self, now: float, *, force: bool = False) -> None:
        """End the window if it is over (or ``force``): log what it held back."""
        if self._window_start is None or not (force or now - self._window_start >= self._window):
            return
        held, self._held = self._held, {}
        self._window_start, self._lines = None, 0
        self._summarise(held)

    def _summarise(self, groups: dict[_Kind, list[str]]) -> None:
        for (old, new, reason), ids in groups.items():
            shown = ", ".join(ids[:_IDS_SHOWN])
            more = f" and {len(ids) - _IDS_SHOWN:,} more" if len(ids) > _IDS_SHOWN else ""
            self._log.info(
                "%s devices: %s -> %s (%s): %s%s",
                f"{len(ids):,}",
                old,
                new,
                reason,
                shown,
                more,
                extra={"transitions": len(ids)},
            )


def _grouped(transitions: Sequence[Transition]) -> dict[_Kind, list[str]]:
    groups: dict[_Kind, list[str]] = {}
    for tr in transitions:
        device_id, old, new, reason = _line(tr)
        groups.setdefault((old, new, reason), []).append(device_id)
    return groups

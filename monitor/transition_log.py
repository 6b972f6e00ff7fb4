"""How transitions reach the log: one line each, or one line per kind in a mass event.

A line per transition is what an operator wants when a few devices change state. When
a broker outage or a power cut makes 100,000 devices late in the same tick, 100,000
lines are unreadable and formatting them was the largest single cost of handling the
transitions (measured with ``bench/bench_monitor.py``'s detection latency). Then each
kind of change (old state, new state, reason) gets one INFO line with a count and the
first few device ids; every device's line is still there at DEBUG. The transitions
table and the status topics carry each transition regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from monitor.liveness.states import Transition

# Batches up to this size are logged a line per transition.
LOG_EACH_UP_TO: Final = 20
_IDS_SHOWN: Final = 5


def _line(tr: Transition) -> tuple[str, str, str, str]:
    return (tr.device_id, tr.old.value if tr.old else "new", tr.new.value, tr.reason.value)


def log_transitions(log: logging.Logger, transitions: Sequence[Transition]) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    if len(transitions) <= LOG_EACH_UP_TO:
        for tr in transitions:
            log.info("device %s: %s -> %s (%s)", *_line(tr))
        return
    groups: dict[tuple[str, str, str], list[str]] = {}
    for tr in transitions:
        device_id, old, new, reason = _line(tr)
        groups.setdefault((old, new, reason), []).append(device_id)
    for (old, new, reason), ids in groups.items():
        shown = ", ".join(ids[:_IDS_SHOWN])
        more = f" and {len(ids) - _IDS_SHOWN:,} more" if len(ids) > _IDS_SHOWN else ""
        log.info(
            "%s devices: %s -> %s (%s): %s%s",
            f"{len(ids):,}",
            old,
            new,
            reason,
            shown,
            more,
            extra={"transitions": len(ids)},
        )
    if log.isEnabledFor(logging.DEBUG):
        for tr in transitions:
            log.debug("device %s: %s -> %s (%s)", *_line(tr))

"""Missed heartbeats: how many beats a device owed since a reference time.

A beat is counted missed once half an interval has passed after it was due and it has
not come: beats due at ``ref + k * interval`` (k >= 1), missed from ``ref + (k + 0.5) *
interval``. The engine counts them *while* they are missed (the shell asks every flush
window for devices that are late or stale) and tops the count up when the next
heartbeat arrives, so a silence shows up as it happens, and a beat that finally comes
adds only what was not counted yet. The result over one gap equals
``round(gap / interval) - 1``.

The reference is the last heartbeat of the current session heard by this monitor
process -- or, when there is none, when the session began (its online presence), when
the monitor last regained sight of the broker, when the device was loaded at start or
left maintenance. So nothing is ever counted across a new session, a clean shutdown, a
monitor restart or a blind period: those gaps are the outage, which transitions tell.
"""

from __future__ import annotations

import math


def missed_between(ref: float, now: float, interval: float) -> int:
    """Beats due after ``ref`` that are at least half an interval overdue at ``now``."""
    if interval <= 0 or now <= ref:
        return 0
    return max(0, math.floor((now - ref) / interval - 0.5))

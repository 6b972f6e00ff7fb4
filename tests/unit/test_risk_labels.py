"""Labels from transitions: outages, short drops, and time to the next outage."""

from __future__ import annotations

import math

import numpy as np

from monitor.liveness.states import Reason, State, Transition
from monitor.risk.labels import MIN_OUTAGE, outage_starts, time_to_next_outage

ON, LATE, STALE, OFF, LOST = State.ONLINE, State.LATE, State.STALE, State.OFFLINE, State.LOST


def _tr(dev: str, old: State | None, new: State, reason: Reason, at: float) -> Transition:
    return Transition(dev, old, new, reason, at, "s")


def test_outages_are_drops_that_last_short_drops_and_shutdowns_are_not() -> None:
    trs = [
        _tr("a", None, ON, Reason.FIRST_SEEN, 0.0),
        # reboot: offline for 40 s, back -> not an outage
        _tr("a", ON, OFF, Reason.CONNECTION_LOST, 100.0),
        _tr("a", OFF, ON, Reason.PRESENCE_ONLINE, 140.0),
        # stale for an hour -> outage
        _tr("a", ON, LATE, Reason.MISSED_HEARTBEATS, 1000.0),
        _tr("a", LATE, STALE, Reason.STOPPED_BEATING, 1100.0),
        _tr("a", STALE, ON, Reason.HEARTBEAT, 1100.0 + MIN_OUTAGE + 1),
        # shut down for good -> not an outage
        _tr("a", ON, OFF, Reason.SHUTDOWN, 9000.0),
        _tr("b", None, ON, Reason.FIRST_SEEN, 0.0),
        _tr("b", ON, OFF, Reason.CONNECTION_LOST, 500.0),  # never back
        _tr("b", OFF, LOST, Reason.GONE, 90_000.0),
    ]
    assert outage_starts(trs) == {"a": [1100.0], "b": [500.0]}


def test_time_to_next_outage_per_sample() -> None:
    outages = {"a": [100.0, 500.0]}
    ids = ["a", "a", "a", "b"]
    times = np.array([50.0, 100.0, 600.0, 0.0])
    got = time_to_next_outage(ids, times, outages)
    assert got[0] == 50.0
    assert got[1] == 400.0  # the outage at 100 has started: the next one counts
    assert math.isinf(got[2])
    assert math.isinf(got[3])

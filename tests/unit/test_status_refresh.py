"""The status refresh grid: bounded per device, spread over the fleet, never far behind."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from monitor.status_refresh import last_seen_due, refresh_period

T0 = 1_700_000_000.0


def shown_after_each_beat(device_id: str, beats: list[float], period: float) -> list[float]:
    """What the status shows after each heartbeat (the first beat is a transition)."""
    shown = [beats[0]]
    for previous, wall in itertools.pairwise(beats):
        shown.append(wall if last_seen_due(device_id, previous, wall, period) else shown[-1])
    return shown


def test_period_is_the_minimum_until_the_fleet_needs_more() -> None:
    assert refresh_period(0, minimum=60.0, rate=1000.0) == 60.0
    assert refresh_period(60_000, minimum=60.0, rate=1000.0) == 60.0
    assert refresh_period(1_000_000, minimum=60.0, rate=1000.0) == 1000.0


@pytest.mark.parametrize("interval", [0.1, 1.0, 7.0, 30.0, 90.0])
def test_a_beating_device_is_refreshed_at_most_once_per_period_never_a_period_behind(
    interval: float,
) -> None:
    period = 10.0
    beats = [T0 + 0.37 + i * interval for i in range(int(600 / interval))]
    shown = shown_after_each_beat("pump-7", beats, period)
    refreshes = [w for w, s in zip(beats[1:], shown[1:], strict=True) if w == s]
    span = beats[-1] - beats[0]
    # At most one per period (or one per heartbeat when beats are further apart)...
    assert len(refreshes) <= span / max(period, interval) + 1
    gaps = [b - a for a, b in itertools.pairwise(refreshes)]
    assert all(gap > period - interval - 1e-9 for gap in gaps)
    # ...and what the status shows is always less than a period behind the last beat.
    assert all(wall - seen < period for wall, seen in zip(beats, shown, strict=True))


def test_refreshes_of_a_fleet_spread_over_the_period() -> None:
    # 2,000 devices beating in lockstep every second: without a per-device phase every
    # one would refresh in the same second of each period.
    period = 20.0
    per_second: Counter[int] = Counter()
    for n in range(2000):
        device_id = f"dev-{n:05d}"
        for second in range(1, 200):
            if last_seen_due(device_id, T0 + second - 1, T0 + second, period):
                per_second[second] += 1
    total = sum(per_second.values())
    assert 2000 * 9 <= total <= 2000 * 11  # ~one per device per period
    average = total / 199
    assert max(per_second.values()) < 3 * average


def test_a_wall_clock_step_back_refreshes_rather_than_hides() -> None:
    assert last_seen_due("d1", T0 + 100.0, T0 + 40.0, 60.0) or last_seen_due(
        "d1", T0 + 100.0, T0 - 20.0, 60.0
    )

"""Accelerated replay through the real engine: labels match the planned failures."""

from __future__ import annotations

import numpy as np
import pytest

from device_client.degradation import HOUR, DevicePlan, Profile, plan_fleet
from monitor.risk.evaluate import day_threshold, device_days, measure
from monitor.risk.labels import outage_starts
from monitor.risk.replay import EPOCH, ReplayResult, device_id, replay

MIX = {
    Profile.BATTERY: 0.1,
    Profile.FLAKY_LINK: 0.1,
    Profile.MEMORY_LEAK: 0.1,
    Profile.SLOWDOWN: 0.1,
    Profile.SUDDEN_DEATH: 0.1,
}
DURATION = 16 * HOUR
Fleet = tuple[list[DevicePlan], ReplayResult]


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    plans = plan_fleet(
        40, mix=MIX, duration=DURATION, seed=5, settle=4 * HOUR, span=(2 * HOUR, 6 * HOUR)
    )
    return plans, replay(plans, duration=DURATION, cycle=600.0)


def test_every_planned_failure_is_one_outage_and_healthy_devices_have_none(fleet: Fleet) -> None:
    plans, result = fleet
    outages = outage_starts(result.transitions)
    for plan in plans:
        name = device_id(plan)
        if plan.fail_at is None:
            assert name not in outages, (name, outages.get(name))
            continue
        starts = outages[name]
        assert len(starts) == 1, (name, starts)
        # A will counts at once (after the hold); a hang shows after missed_limit intervals;
        # a fading device (brown-outs, lost beats) may go stale a little before it dies.
        assert -900 <= starts[0] - (EPOCH + plan.fail_at) <= 3 * plan.interval + 10 + 1


def test_samples_are_taken_every_cycle_for_devices_that_are_up(fleet: Fleet) -> None:
    plans, result = fleet
    x, ids, _ = result.samples()
    assert x.shape == (len(ids), 33)
    assert len(result.frames) == int(DURATION // 600.0)
    first = result.frames[0]
    assert len(first.device_ids) == len(plans)
    # Dead devices are no longer scored at the end.
    dead = {device_id(p) for p in plans if p.fail_at is not None}
    assert not dead & set(result.frames[-1].device_ids)
    assert result.heartbeats > 0.9 * len(plans) * DURATION / 60.0


def test_replay_is_deterministic() -> None:
    plans = plan_fleet(
        10, mix=MIX, duration=8 * HOUR, seed=9, settle=2 * HOUR, span=(1 * HOUR, 2 * HOUR)
    )
    a = replay(plans, duration=8 * HOUR)
    b = replay(plans, duration=8 * HOUR)
    assert a.transitions == b.transitions
    np.testing.assert_array_equal(a.samples()[0], b.samples()[0])


def test_threshold_flags_at_most_the_target_share_of_healthy_days() -> None:
    ids = [f"d{i}" for i in range(100) for _ in range(10)]
    times = np.tile(np.arange(10) * 8640.0, 100)  # one day each
    score = np.repeat(np.arange(100, dtype=float), 10)
    healthy = np.ones(len(ids), dtype=bool)
    keys = device_days(ids, times, 0.0)
    thr = day_threshold(score, healthy, keys, 0.05)
    assert int((np.arange(100) >= thr).sum()) <= 5
    assert int((np.arange(100) >= thr).sum()) >= 4


def test_measure_counts_a_catch_only_if_flagged_30_minutes_before(fleet: Fleet) -> None:
    plans, result = fleet
    outages = outage_starts(result.transitions)
    _, ids, times = result.samples()
    names = [device_id(p) for p in plans]
    to_out = {n: outages[n][0] for n in outages}
    # Flag every failing device from 45 min before its outage on: all caught.
    flagged = np.array(
        [d in to_out and to_out[d] - 2700 <= t for d, t in zip(ids, times, strict=True)]
    )
    fig = measure(
        plans,
        plan_ids=names,
        outages=outages,
        device_ids=ids,
        times=times,
        flagged=flagged,
        start=EPOCH,
    )
    hit, total = fig.degrading_caught
    assert hit == total == 16
    assert fig.healthy_flagged_days == 0
    assert fig.healthy_days > 0
    # From 20 min before: too late, none caught.
    flagged = np.array(
        [d in to_out and to_out[d] - 1200 <= t for d, t in zip(ids, times, strict=True)]
    )
    assert measure(
        plans,
        plan_ids=names,
        outages=outages,
        device_ids=ids,
        times=times,
        flagged=flagged,
        start=EPOCH,
    ).degrading_caught == (
        0,
        16,
    )

"""The degradation schedule: seeded, pure, and each profile shows its symptom."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from device_client.degradation import (
    BATTERY,
    FREE_MEMORY,
    HOUR,
    RSSI,
    Action,
    ActionKind,
    DevicePlan,
    Profile,
    device_actions,
    plan_fleet,
)

DAY = 24 * HOUR


def _plan(
    profile: Profile, *, onset: float | None, fail_at: float | None, seed: int = 7
) -> DevicePlan:
    return DevicePlan(
        index=0, profile=profile, device_class="sensor", interval=60.0, seed=seed,
        onset=onset, fail_at=fail_at,
    )  # fmt: skip


def _actions(plan: DevicePlan, until: float = 2 * DAY) -> list[Action]:
    return list(device_actions(plan, until=until))


def test_plan_gives_each_profile_its_share_and_failures_inside_the_window() -> None:
    mix = {Profile.BATTERY: 0.1, Profile.SLOWDOWN: 0.05, Profile.SUDDEN_DEATH: 0.05}
    plans = plan_fleet(200, mix=mix, duration=2 * DAY, seed=3)
    counts = Counter(p.profile for p in plans)
    assert counts == {
        Profile.HEALTHY: 160, Profile.BATTERY: 20, Profile.SLOWDOWN: 10, Profile.SUDDEN_DEATH: 10,
    }  # fmt: skip
    for p in plans:
        if p.profile is Profile.HEALTHY:
            assert p.fail_at is None
            continue
        assert p.fail_at is not None
        assert 6 * HOUR <= p.fail_at <= 2 * DAY - HOUR
        if p.profile is Profile.SUDDEN_DEATH:
            assert p.onset is None
        else:
            assert p.onset is not None
            assert 4 * HOUR <= p.fail_at - p.onset <= 20 * HOUR


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    mix = {Profile.FLAKY_LINK: 0.2}
    a = plan_fleet(50, mix=mix, duration=DAY, seed=1)
    b = plan_fleet(50, mix=mix, duration=DAY, seed=1)
    c = plan_fleet(50, mix=mix, duration=DAY, seed=2)
    assert a == b
    assert a != c
    assert _actions(a[0], DAY) == _actions(b[0], DAY)


def test_bad_mix_and_short_duration_are_refused() -> None:
    with pytest.raises(ValueError, match="add up to more than 1"):
        plan_fleet(10, mix={Profile.BATTERY: 0.7, Profile.SLOWDOWN: 0.7}, duration=DAY, seed=0)
    with pytest.raises(ValueError, match="too short"):
        plan_fleet(10, mix={}, duration=5 * HOUR, seed=0)


def test_healthy_device_beats_all_along_with_rare_reconnects() -> None:
    acts = _actions(_plan(Profile.HEALTHY, onset=None, fail_at=None), 2 * DAY)
    kinds = Counter(a.kind for a in acts)
    assert ActionKind.DIE not in kinds
    assert ActionKind.HANG not in kinds
    assert kinds[ActionKind.BEAT] > 0.95 * 2 * DAY / 60
    assert kinds[ActionKind.DROP] + kinds[ActionKind.REBOOT] <= 10
    times = [a.at for a in acts]
    assert times == sorted(times)


def test_battery_drains_then_the_device_dies_at_fail_at() -> None:
    acts = _actions(_plan(Profile.BATTERY, onset=10 * HOUR, fail_at=20 * HOUR))
    assert acts[-1].kind is ActionKind.DIE
    assert acts[-1].at == pytest.approx(20 * HOUR, abs=120)
    levels = [(a.at, a.metrics[BATTERY]) for a in acts if a.metrics]
    at_onset = next(v for t, v in levels if t >= 10 * HOUR)
    near_end = next(v for t, v in levels if t >= 19.5 * HOUR)
    assert near_end < 10 < at_onset


def test_flaky_link_reconnects_more_and_more_then_is_gone() -> None:
    acts = _actions(_plan(Profile.FLAKY_LINK, onset=10 * HOUR, fail_at=30 * HOUR))
    drops = [a.at for a in acts if a.kind is ActionKind.DROP]
    early = sum(10 * HOUR <= t < 20 * HOUR for t in drops)
    late = sum(20 * HOUR <= t < 30 * HOUR for t in drops)
    assert late > 3 * max(early, 1)
    assert acts[-1].kind is ActionKind.DIE
    rssi = [a.metrics[RSSI] for a in acts if a.metrics]
    assert sum(rssi[-30:]) / 30 < sum(rssi[:30]) / 30 - 10


def test_memory_leak_reboots_ever_more_often() -> None:
    acts = _actions(_plan(Profile.MEMORY_LEAK, onset=6 * HOUR, fail_at=40 * HOUR))
    reboots = [a.at for a in acts if a.kind is ActionKind.REBOOT]
    assert len(reboots) >= 4
    gaps = [b - a for a, b in pairwise(reboots)]
    assert gaps[-1] < gaps[0] / 3
    # Memory is restored by each reboot.
    after = next(a for a in acts if a.metrics and a.at > reboots[0])
    assert after.metrics is not None
    assert after.metrics[FREE_MEMORY] > 100
    assert acts[-1].kind is ActionKind.DIE


def test_slowdown_stretches_the_gaps_then_hangs_without_a_will() -> None:
    acts = _actions(_plan(Profile.SLOWDOWN, onset=6 * HOUR, fail_at=18 * HOUR))
    beats = [a.at for a in acts if a.kind is ActionKind.BEAT]
    early = [b - a for a, b in pairwise(beats) if b < 6 * HOUR]
    late = [b - a for a, b in pairwise(beats) if a > 17 * HOUR]
    assert sum(late) / len(late) > 1.6 * sum(early) / len(early)
    assert acts[-1].kind is ActionKind.HANG


def test_sudden_death_gives_no_warning() -> None:
    acts = _actions(_plan(Profile.SUDDEN_DEATH, onset=None, fail_at=12 * HOUR, seed=11))
    assert acts[-1].kind in (ActionKind.DIE, ActionKind.HANG)
    beats = [a for a in acts if a.kind is ActionKind.BEAT]
    assert beats[-1].metrics is not None
    assert beats[-1].metrics[BATTERY] > 15

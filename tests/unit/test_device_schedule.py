"""Heartbeat schedule: a fixed grid, no drift, skipped slots after stalls, interval changes."""

from __future__ import annotations

import random

import pytest

from device_client.schedule import BeatSchedule


def _schedule(interval: float = 10.0, jitter: float = 0.0, seed: int = 1) -> BeatSchedule:
    return BeatSchedule(interval, jitter=jitter, rng=random.Random(seed))


def test_first_beat_is_due_at_start() -> None:
    s = _schedule()
    assert not s.is_due(100.0)
    s.start(100.0)
    assert s.due_at == 100.0
    assert s.is_due(100.0)


def test_late_sends_do_not_drift_the_grid() -> None:
    s = _schedule(interval=10.0)
    s.start(0.0)
    now = 0.0
    # Every beat goes out 0.7 s late (a slow timer, a busy loop), for 10 hours.
    for k in range(3600):
        assert s.due_at == pytest.approx(10.0 * k)
        now = s.due_at + 0.7 if s.due_at is not None else now
        s.sent(now)
    # Still on the grid: the next slot is 36000, not 36000 + 3600 * 0.7.
    assert s.next_slot == pytest.approx(36_000.0)


def test_missed_slots_are_skipped_not_burst() -> None:
    s = _schedule(interval=10.0)
    s.start(0.0)
    s.sent(0.0)
    assert s.due_at == 10.0
    # The process was stalled from t=10 to t=47: one beat now, then back on the grid.
    assert s.is_due(47.0)
    s.sent(47.0)
    assert s.last_slot == 10.0
    assert s.due_at == 50.0
    assert not s.is_due(49.9)


def test_jitter_delays_each_beat_within_bound_without_moving_the_grid() -> None:
    s = _schedule(interval=10.0, jitter=2.0, seed=3)
    s.start(0.0)
    offsets = []
    now = 0.0
    for k in range(1, 500):
        s.sent(now)
        due = s.due_at
        assert due is not None
        offsets.append(due - 10.0 * k)
        assert s.next_slot == pytest.approx(10.0 * k)
        now = due
    assert min(offsets) >= 0.0
    assert max(offsets) <= 2.0
    assert max(offsets) > 1.5  # really jittered


def test_jitter_is_capped_at_half_the_interval() -> None:
    s = _schedule(interval=1.0, jitter=30.0)
    s.start(0.0)
    for _ in range(200):
        s.sent(s.due_at or 0.0)
        assert (s.due_at or 0.0) - (s.next_slot or 0.0) <= 0.5


def test_shorter_interval_applies_from_the_last_beat() -> None:
    s = _schedule(interval=30.0)
    s.start(0.0)
    s.sent(0.0)
    s.set_interval(5.0, now=2.0)
    assert s.interval == 5.0
    assert s.due_at == 5.0  # last beat (0) + new interval, not 30
    s.sent(5.0)
    assert s.due_at == 10.0


def test_shorter_interval_already_overdue_beats_at_once() -> None:
    s = _schedule(interval=30.0)
    s.start(0.0)
    s.sent(0.0)
    s.set_interval(5.0, now=12.0)
    assert s.due_at == 12.0
    s.sent(12.0)
    assert s.due_at == 17.0


def test_longer_interval_keeps_the_planned_beat_then_spaces_out() -> None:
    s = _schedule(interval=1.0)
    s.start(0.0)
    s.sent(0.0)
    s.set_interval(60.0, now=0.4)
    # The beat planned for t=1 still comes (and will report 60), then every 60 s.
    assert s.due_at == 1.0
    s.sent(1.0)
    assert s.due_at == 61.0


def test_interval_change_before_start_just_sets_it() -> None:
    s = _schedule(interval=30.0)
    s.set_interval(5.0, now=0.0)
    assert s.due_at is None
    s.start(10.0)
    s.sent(10.0)
    assert s.due_at == 15.0


def test_stop_clears_the_plan() -> None:
    s = _schedule()
    s.start(0.0)
    s.stop()
    assert s.due_at is None
    assert not s.is_due(1e9)

"""Deadlines, policies and maintenance, step by step (R1, R3, R12, R16).

``now`` is the monotonic clock, the wall clock is ``T0 + now``. Unless a test says
otherwise: interval 30 s, grace 10 s, missed_limit 3, lost_after 86 400 s, so late at
40 s, stale at 100 s and lost at 100 s + 86 400 s after the last heartbeat.
"""

from __future__ import annotations

import pytest

from device_client.protocol import Heartbeat, Presence, PresenceState
from monitor.liveness import (
    EventResult,
    LivenessEngine,
    Policy,
    Reason,
    State,
    Transition,
    UnknownDevice,
)

T0 = 1_700_000_000.0
DAY = 86_400.0


def beat(
    engine: LivenessEngine,
    now: float,
    seq: int,
    *,
    device: str = "d1",
    interval: float = 30.0,
    retained: bool = False,
) -> EventResult:
    heartbeat = Heartbeat(seq=seq, session="s1", interval=interval)
    return engine.heartbeat(device, heartbeat, now, T0 + now, retained=retained)


def tick(engine: LivenessEngine, now: float) -> list[tuple[object, ...]]:
    return [(t.old, t.new, t.reason) for t in engine.tick(now, T0 + now)]


def maintenance(engine: LivenessEngine, on: bool, now: float) -> list[tuple[object, ...]]:
    return [(t.old, t.new, t.reason) for t in engine.set_maintenance("d1", on, now, T0 + now)]


def state(engine: LivenessEngine) -> State:
    snap = engine.snapshot("d1")
    assert snap is not None
    return snap.state


def test_online_late_stale_lost_each_at_its_deadline() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert tick(engine, 39.999) == []
    assert tick(engine, 40.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]
    assert tick(engine, 99.999) == []
    assert tick(engine, 100.0) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]
    assert tick(engine, 100.0 + DAY - 0.001) == []
    assert tick(engine, 100.0 + DAY) == [(State.STALE, State.LOST, Reason.GONE)]
    assert tick(engine, 100.0 * DAY) == []
    assert state(engine) is State.LOST


def test_transitions_are_stamped_when_the_deadline_passed_not_when_ticked() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert engine.tick(40.15, T0 + 40.15) == [
        Transition("d1", State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS, T0 + 40.0, "s1")
    ]


def test_a_late_tick_goes_straight_to_stale() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert engine.tick(150.0, T0 + 150) == [
        Transition("d1", State.ONLINE, State.STALE, Reason.STOPPED_BEATING, T0 + 100.0, "s1")
    ]
    # The lost clock runs from when the device went stale, not from the tick.
    assert tick(engine, 100.0 + DAY) == [(State.STALE, State.LOST, Reason.GONE)]


def test_a_very_late_tick_goes_straight_to_lost() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert engine.tick(3 * DAY, T0 + 3 * DAY) == [
        Transition("d1", State.ONLINE, State.LOST, Reason.GONE, T0 + 100.0 + DAY, "s1")
    ]


def test_missed_limit_one_goes_from_online_to_stale() -> None:
    engine = LivenessEngine(classes={"default": Policy(missed_limit=1)})
    beat(engine, 0.0, 1)
    assert tick(engine, 40.0) == [(State.ONLINE, State.STALE, Reason.STOPPED_BEATING)]


def test_policy_grace_missed_limit_and_lost_after_are_used() -> None:
    engine = LivenessEngine(classes={"default": Policy(grace=2.0, missed_limit=5, lost_after=60.0)})
    beat(engine, 0.0, 1, interval=10.0)
    assert tick(engine, 11.9) == []
    assert tick(engine, 12.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]
    assert tick(engine, 51.9) == []
    assert tick(engine, 52.0) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]
    assert tick(engine, 111.9) == []
    assert tick(engine, 112.0) == [(State.STALE, State.LOST, Reason.GONE)]


@pytest.mark.parametrize(
    ("override", "class_interval", "announced", "expected"),
    [
        (5.0, 10.0, 20.0, 5.0),
        (None, 10.0, 20.0, 10.0),
        (None, None, 20.0, 20.0),
        (None, None, None, 30.0),
    ],
)
def test_interval_resolution_order(
    override: float | None, class_interval: float | None, announced: float | None, expected: float
) -> None:
    engine = LivenessEngine(classes={"sensors": Policy(interval=class_interval)})
    if announced is None:
        # Only a presence: the device never announced an interval.
        engine.presence("d1", Presence(PresenceState.ONLINE, "s1"), 0.0, T0)
    else:
        beat(engine, 0.0, 1, interval=announced)
    engine.set_class("d1", "sensors")
    engine.set_interval_override("d1", override)
    snap = engine.snapshot("d1")
    assert snap is not None
    assert snap.effective_interval == expected
    late = expected + 10.0
    assert tick(engine, late - 0.01) == []
    assert tick(engine, late) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_global_default_interval_is_configurable() -> None:
    engine = LivenessEngine(default_interval=60.0, classes={"default": Policy(interval=None)})
    engine.presence("d1", Presence(PresenceState.ONLINE, "s1"), 0.0, T0)
    assert tick(engine, 69.9) == []
    assert tick(engine, 70.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_a_shorter_override_makes_the_device_late_on_the_next_tick() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.set_interval_override("d1", 5.0)
    assert tick(engine, 14.9) == []
    assert tick(engine, 15.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_clearing_an_override_restores_the_announced_interval() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.set_interval_override("d1", 5.0)
    engine.set_interval_override("d1", None)
    assert tick(engine, 39.9) == []
    assert tick(engine, 40.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_set_classes_recomputes_deadlines_and_unconfigured_classes_use_default() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.set_class("d1", "cameras")  # not configured yet: default policy
    assert engine.snapshot("d1") is not None
    engine.set_classes({"cameras": Policy(grace=50.0)})
    assert tick(engine, 79.9) == []
    assert tick(engine, 80.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]
    engine.set_classes({"default": Policy(grace=1.0)})
    # cameras is gone again: back to the (new) default policy, stale at 3 x 30 + 1.
    assert tick(engine, 90.9) == []
    assert tick(engine, 91.0) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]


def test_set_classes_names_the_devices_whose_interval_changed() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)  # announces 30 s, class default
    beat(engine, 0.0, 0, device="d2")
    engine.set_class("d2", "cameras")
    engine.set_interval_override("d1", 5.0)
    # The default class's grace only: no interval shown changes.
    assert engine.set_classes({"default": Policy(grace=1.0)}) == []
    # cameras now says 10 s: d2's interval changes; d1 keeps its override.
    assert engine.set_classes({"cameras": Policy(interval=10.0)}) == ["d2"]
    assert engine.set_classes({"cameras": Policy(interval=10.0, grace=3.0)}) == []
    assert engine.set_classes({}) == ["d2"]


def test_policy_change_never_lets_a_device_climb_back() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    tick(engine, 40.0)
    engine.set_classes({"default": Policy(grace=1000.0)})
    assert tick(engine, 1080.0) == []
    assert state(engine) is State.LATE


# ------------------------------------------------------------------------ maintenance


def test_entering_maintenance_suspends_timing() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert engine.set_maintenance("d1", True, 5.0, T0 + 5) == [
        Transition("d1", State.ONLINE, State.MAINTENANCE, Reason.MAINTENANCE_STARTED, T0 + 5, "s1")
    ]
    assert tick(engine, 10 * DAY) == []
    assert maintenance(engine, True, 6.0) == []


@pytest.mark.parametrize("start", [State.LATE, State.STALE, State.LOST])
def test_maintenance_can_start_from_any_state(start: State) -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    now = {State.LATE: 40.0, State.STALE: 100.0, State.LOST: 100.0 + DAY}[start]
    tick(engine, now)
    assert maintenance(engine, True, now + 1) == [
        (start, State.MAINTENANCE, Reason.MAINTENANCE_STARTED)
    ]


def test_leaving_maintenance_with_a_recent_heartbeat_is_online() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    maintenance(engine, True, 1.0)
    beat(engine, 500.0, 2)
    assert maintenance(engine, False, 530.0) == [
        (State.MAINTENANCE, State.ONLINE, Reason.MAINTENANCE_ENDED)
    ]
    # Late deadline counted from the last heartbeat (500 + 40).
    assert tick(engine, 539.9) == []
    assert tick(engine, 540.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_leaving_maintenance_rearms_no_earlier_than_now_plus_grace() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    maintenance(engine, True, 1.0)
    beat(engine, 500.0, 2)
    # 39 s after the heartbeat: by the heartbeat alone the device would be late in 1 s.
    assert maintenance(engine, False, 539.0) == [
        (State.MAINTENANCE, State.ONLINE, Reason.MAINTENANCE_ENDED)
    ]
    assert tick(engine, 548.9) == []
    assert tick(engine, 549.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_leaving_maintenance_without_a_recent_heartbeat_is_stale() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    maintenance(engine, True, 1.0)
    assert engine.set_maintenance("d1", False, 1000.0, T0 + 1000) == [
        Transition("d1", State.MAINTENANCE, State.STALE, Reason.MAINTENANCE_ENDED, T0 + 1000, "s1")
    ]
    # Time in maintenance is not time missing: the lost clock starts now.
    assert tick(engine, 1000.0 + DAY - 1) == []
    assert tick(engine, 1000.0 + DAY) == [(State.STALE, State.LOST, Reason.GONE)]


def test_leaving_maintenance_just_outside_interval_plus_grace_is_stale() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    maintenance(engine, True, 1.0)
    assert maintenance(engine, False, 40.5) == [
        (State.MAINTENANCE, State.STALE, Reason.MAINTENANCE_ENDED)
    ]


def test_leaving_maintenance_when_not_in_it_does_nothing() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert maintenance(engine, False, 1.0) == []
    assert state(engine) is State.ONLINE


def test_maintenance_on_an_untracked_device_is_refused() -> None:
    engine = LivenessEngine()
    with pytest.raises(UnknownDevice) as info:
        engine.set_maintenance("ghost", True, 0.0, T0)
    assert info.value.device_id == "ghost"
    with pytest.raises(UnknownDevice):
        engine.set_interval_override("ghost", 10.0)
    with pytest.raises(UnknownDevice):
        engine.set_class("ghost", "x")


def test_a_limited_tick_judges_the_earliest_deadlines_first_and_leaves_the_rest_due() -> None:
    engine = LivenessEngine()
    for n in range(5):
        beat(engine, n * 0.1, 1, device=f"d{n}")
    assert not engine.due(45.0 - 10)  # nothing due before the first deadline (40.0)
    first = engine.tick(45.0, T0 + 45.0, limit=2)
    assert [(t.device_id, t.at_wall) for t in first] == [("d0", T0 + 40.0), ("d1", T0 + 40.1)]
    assert engine.due(45.0)
    # Judged later, still stamped when each deadline passed.
    rest = engine.tick(46.0, T0 + 46.0, limit=2) + engine.tick(46.0, T0 + 46.0, limit=2)
    assert [(t.device_id, t.new, t.at_wall) for t in rest] == [
        ("d2", State.LATE, T0 + 40.2),
        ("d3", State.LATE, T0 + 40.3),
        ("d4", State.LATE, T0 + 40.4),
    ]
    assert not engine.due(46.0)
    assert engine.tick(46.0, T0 + 46.0, limit=2) == []

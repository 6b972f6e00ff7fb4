"""Heartbeats, step by step: sessions, duplicates, retained claims, latency (R2, R4-R7).

Times are explicit: ``now`` is the monotonic clock, the wall clock is ``T0 + now``.
Default timing: interval 30 s (announced), grace 10 s, missed_limit 3 -> late at 40 s,
stale at 100 s.
"""

from __future__ import annotations

import pytest

from device_client.protocol import Heartbeat, OfflineReason, Presence, PresenceState
from monitor.liveness import (
    EventResult,
    LivenessEngine,
    Outcome,
    Reason,
    State,
    Transition,
)

T0 = 1_700_000_000.0


def beat(
    engine: LivenessEngine,
    now: float,
    seq: int,
    *,
    session: str = "s1",
    device: str = "d1",
    interval: float = 30.0,
    ts: float | None = None,
    retained: bool = False,
) -> EventResult:
    heartbeat = Heartbeat(seq=seq, session=session, interval=interval, ts=ts)
    return engine.heartbeat(device, heartbeat, now, T0 + now, retained=retained)


def offline(
    engine: LivenessEngine, now: float, session: str, reason: OfflineReason, device: str = "d1"
) -> EventResult:
    return engine.presence(device, Presence(PresenceState.OFFLINE, session, reason), now, T0 + now)


def state(engine: LivenessEngine, device: str = "d1") -> State:
    snap = engine.snapshot(device)
    assert snap is not None
    return snap.state


def moves(transitions: tuple[Transition, ...] | list[Transition]) -> list[tuple[object, ...]]:
    return [(t.old, t.new, t.reason) for t in transitions]


def test_first_heartbeat_tracks_the_device_online() -> None:
    engine = LivenessEngine()
    result = beat(engine, 5.0, 1)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == (
        Transition("d1", None, State.ONLINE, Reason.FIRST_SEEN, T0 + 5.0, "s1"),
    )
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.state, snap.reason, snap.since_wall) == (State.ONLINE, Reason.FIRST_SEEN, T0 + 5)
    assert (snap.session, snap.last_seq, snap.last_seen_wall) == ("s1", 1, T0 + 5.0)
    assert snap.announced_interval == 30.0
    assert snap.effective_interval == 30.0
    assert snap.confirmed


def test_latency_is_receive_wall_minus_device_ts() -> None:
    engine = LivenessEngine()
    assert beat(engine, 0.0, 1, ts=T0 - 0.25).latency == pytest.approx(0.25)
    assert beat(engine, 1.0, 2).latency is None
    # A device clock a little ahead (within clock.TOLERANCE) is taken at its word: a
    # negative figure. A clock further off is corrected (test_liveness_clock.py).
    result = beat(engine, 2.0, 3, ts=T0 + 2.0 + 0.1)
    assert result.latency == pytest.approx(-0.1)
    assert result.outcome is Outcome.ACCEPTED


def test_device_timestamp_never_decides_a_verdict() -> None:
    engine = LivenessEngine()
    # A device whose clock says its heartbeat is ten minutes old is still fresh.
    beat(engine, 0.0, 1, ts=T0 - 600.0)
    assert engine.tick(39.0, T0 + 39) == []
    assert state(engine) is State.ONLINE


@pytest.mark.parametrize("dup_seq", [1, 0])
def test_duplicate_changes_nothing_not_even_the_deadline(dup_seq: int) -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    result = beat(engine, 35.0, dup_seq)
    assert result.outcome is Outcome.DUPLICATE
    assert result.transitions == ()
    assert result.latency is None
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.last_seq, snap.last_seen_wall) == (1, T0)
    # Still late at 40 s counted from the first heartbeat.
    assert moves(engine.tick(40.0, T0 + 40)) == [
        (State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)
    ]


def test_next_heartbeat_rearms_from_its_receive_time() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert beat(engine, 35.0, 2).outcome is Outcome.ACCEPTED
    assert engine.tick(74.9, T0 + 74.9) == []
    assert moves(engine.tick(75.0, T0 + 75)) == [
        (State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)
    ]


def test_new_session_is_adopted_and_seq_restarts() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 50)
    result = beat(engine, 10.0, 1, session="s2")
    assert result.outcome is Outcome.RECONNECTED
    assert result.transitions == ()
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.session, snap.last_seq) == ("s2", 1)
    assert beat(engine, 11.0, 1, session="s2").outcome is Outcome.DUPLICATE
    assert beat(engine, 12.0, 2, session="s2").outcome is Outcome.ACCEPTED


def test_heartbeat_from_the_previous_session_is_stale() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1, session="s1")
    beat(engine, 1.0, 1, session="s2")
    result = beat(engine, 2.0, 99, session="s1")
    assert result.outcome is Outcome.STALE_SESSION
    assert result.transitions == ()
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.session, snap.last_seq, snap.last_seen_wall) == ("s2", 1, T0 + 1.0)


def test_heartbeat_from_a_session_that_shut_down_is_stale() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 1.0, "s1", OfflineReason.SHUTDOWN)
    result = beat(engine, 2.0, 2)
    assert result.outcome is Outcome.STALE_SESSION
    assert state(engine) is State.OFFLINE
    # The same device with a new connection is back.
    assert moves(beat(engine, 3.0, 1, session="s2").transitions) == [
        (State.OFFLINE, State.ONLINE, Reason.HEARTBEAT)
    ]


@pytest.mark.parametrize(
    ("silence", "from_state"),
    [(40.0, State.LATE), (100.0, State.STALE), (100.0 + 86_400.0, State.LOST)],
)
def test_heartbeat_brings_a_silent_device_back_online(silence: float, from_state: State) -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    for now in (40.0, 100.0, silence):
        if now <= silence:
            engine.tick(now, T0 + now)
    assert state(engine) is from_state
    now = silence + 1.0
    result = beat(engine, now, 2)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == (
        Transition("d1", from_state, State.ONLINE, Reason.HEARTBEAT, T0 + now, "s1"),
    )
    assert engine.tick(now + 39.0, T0 + now + 39) == []


def test_heartbeat_in_maintenance_updates_last_seen_but_not_state() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.set_maintenance("d1", True, 1.0, T0 + 1)
    result = beat(engine, 50.0, 2)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == ()
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.state, snap.last_seq, snap.last_seen_wall) == (State.MAINTENANCE, 2, T0 + 50)
    assert engine.tick(1000.0, T0 + 1000) == []


def test_retained_heartbeat_registers_an_unknown_device_that_times_out_normally() -> None:
    engine = LivenessEngine()
    result = beat(engine, 0.0, 7, retained=True, ts=T0 - 3600)
    assert result.outcome is Outcome.RETAINED_CLAIM
    assert result.latency is None
    assert result.transitions == (
        Transition("d1", None, State.UNKNOWN, Reason.FIRST_SEEN, T0, "s1"),
    )
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.last_seq, snap.last_seen_wall, snap.confirmed) == (7, None, False)
    assert engine.tick(39.0, T0 + 39) == []
    assert moves(engine.tick(40.0, T0 + 40)) == [
        (State.UNKNOWN, State.LATE, Reason.MISSED_HEARTBEATS)
    ]
    assert moves(engine.tick(100.0, T0 + 100)) == [
        (State.LATE, State.STALE, Reason.STOPPED_BEATING)
    ]


def test_fresh_heartbeat_confirms_an_unknown_device() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 7, retained=True)
    result = beat(engine, 3.0, 8)
    assert result.outcome is Outcome.ACCEPTED
    assert moves(result.transitions) == [(State.UNKNOWN, State.ONLINE, Reason.HEARTBEAT)]
    snap = engine.snapshot("d1")
    assert snap is not None
    assert snap.confirmed


def test_retained_heartbeat_never_refreshes_a_known_device() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    result = beat(engine, 30.0, 2, retained=True)
    assert result.outcome is Outcome.RETAINED_CLAIM
    assert result.transitions == ()
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.last_seq, snap.last_seen_wall) == (1, T0)
    assert moves(engine.tick(40.0, T0 + 40)) == [
        (State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)
    ]
    # Nor does it bring a late device back.
    assert beat(engine, 41.0, 3, retained=True).transitions == ()
    assert state(engine) is State.LATE


def test_retained_heartbeat_with_a_newer_session_records_the_session_only() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.tick(40.0, T0 + 40)
    result = beat(engine, 41.0, 5, session="s2", retained=True)
    assert result.outcome is Outcome.RETAINED_CLAIM
    assert result.transitions == ()
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.state, snap.session, snap.last_seq) == (State.LATE, "s2", 5)
    # The old session is now the previous one; the claimed one continues normally.
    assert beat(engine, 42.0, 9, session="s1").outcome is Outcome.STALE_SESSION
    assert beat(engine, 43.0, 5, session="s2").outcome is Outcome.DUPLICATE
    fresh = beat(engine, 44.0, 6, session="s2")
    assert fresh.outcome is Outcome.ACCEPTED
    assert moves(fresh.transitions) == [(State.LATE, State.ONLINE, Reason.HEARTBEAT)]


def test_retained_heartbeat_from_the_previous_session_is_stale() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1, session="s1")
    beat(engine, 1.0, 1, session="s2")
    assert beat(engine, 2.0, 3, session="s1", retained=True).outcome is Outcome.STALE_SESSION


def test_announced_interval_sets_the_deadline_and_can_change() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1, interval=5.0)
    assert engine.tick(14.9, T0 + 14.9) == []
    assert moves(engine.tick(15.0, T0 + 15)) == [
        (State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)
    ]
    beat(engine, 16.0, 2, interval=60.0)
    assert engine.tick(85.9, T0 + 85.9) == []
    assert moves(engine.tick(86.0, T0 + 86)) == [
        (State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)
    ]


def test_devices_are_independent() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1, device="a")
    beat(engine, 20.0, 1, device="b")
    assert [(t.device_id, t.new) for t in engine.tick(40.0, T0 + 40)] == [("a", State.LATE)]
    assert [(t.device_id, t.new) for t in engine.tick(60.0, T0 + 60)] == [("b", State.LATE)]


def test_a_heartbeat_says_the_cadence_it_replaced() -> None:
    engine = LivenessEngine()
    assert beat(engine, 5.0, 1).before is None  # a new device has none
    second = beat(engine, 35.0, 2, interval=10.0)
    assert second.before == ("s1", T0 + 5.0, 30.0)  # before the new announcement
    # A reconnect reports the old session's cadence, then adopts the new one.
    third = beat(engine, 40.0, 1, session="s2", interval=10.0)
    assert third.outcome is Outcome.RECONNECTED
    assert third.before == ("s1", T0 + 35.0, 10.0)
    assert beat(engine, 41.0, 1, session="s2").before is None  # a duplicate: nothing

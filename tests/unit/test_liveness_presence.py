"""Presence, wills and shutdowns, step by step (R4, R7-R11).

``now`` is the monotonic clock, the wall clock is ``T0 + now``. Default timing:
interval 30 s, grace 10 s (late at 40 s), will_hold 2 s.
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
LOST = OfflineReason.CONNECTION_LOST
SHUTDOWN = OfflineReason.SHUTDOWN


def beat(
    engine: LivenessEngine, now: float, seq: int, *, session: str = "s1", retained: bool = False
) -> EventResult:
    heartbeat = Heartbeat(seq=seq, session=session, interval=30.0)
    return engine.heartbeat("d1", heartbeat, now, T0 + now, retained=retained)


def online(
    engine: LivenessEngine, now: float, session: str = "s1", *, retained: bool = False
) -> EventResult:
    presence = Presence(PresenceState.ONLINE, session)
    return engine.presence("d1", presence, now, T0 + now, retained=retained)


def offline(
    engine: LivenessEngine,
    now: float,
    session: str = "s1",
    reason: OfflineReason | None = LOST,
    *,
    retained: bool = False,
) -> EventResult:
    presence = Presence(PresenceState.OFFLINE, session, reason)
    return engine.presence("d1", presence, now, T0 + now, retained=retained)


def tick(engine: LivenessEngine, now: float) -> list[tuple[object, ...]]:
    return [(t.old, t.new, t.reason) for t in engine.tick(now, T0 + now)]


def state(engine: LivenessEngine) -> State:
    snap = engine.snapshot("d1")
    assert snap is not None
    return snap.state


def session(engine: LivenessEngine) -> str | None:
    snap = engine.snapshot("d1")
    assert snap is not None
    return snap.session


def test_first_presence_online_tracks_the_device_and_expects_a_heartbeat() -> None:
    engine = LivenessEngine()
    result = online(engine, 0.0)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == (
        Transition("d1", None, State.ONLINE, Reason.FIRST_SEEN, T0, "s1"),
    )
    assert tick(engine, 39.9) == []
    assert tick(engine, 40.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_presence_online_with_a_new_session_brings_an_offline_device_back() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 1.0, reason=SHUTDOWN)
    assert state(engine) is State.OFFLINE
    result = online(engine, 100.0, "s2")
    assert result.outcome is Outcome.RECONNECTED
    assert result.transitions == (
        Transition("d1", State.OFFLINE, State.ONLINE, Reason.PRESENCE_ONLINE, T0 + 100, "s2"),
    )
    # First heartbeat of the new session is due within interval + grace.
    assert tick(engine, 139.9) == []
    assert tick(engine, 140.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_presence_online_new_session_rearms_an_online_device_without_a_transition() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    result = online(engine, 30.0, "s2")
    assert result.outcome is Outcome.RECONNECTED
    assert result.transitions == ()
    assert session(engine) == "s2"
    assert tick(engine, 69.9) == []
    assert tick(engine, 70.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_presence_online_for_the_current_session_changes_nothing() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    tick(engine, 40.0)
    result = online(engine, 41.0)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == ()
    assert state(engine) is State.LATE


def test_presence_online_for_the_current_session_confirms_an_unknown_device() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1, retained=True)
    result = online(engine, 5.0)
    assert [(t.old, t.new, t.reason) for t in result.transitions] == [
        (State.UNKNOWN, State.ONLINE, Reason.PRESENCE_ONLINE)
    ]
    assert tick(engine, 44.9) == []
    assert tick(engine, 45.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_presence_online_naming_the_previous_session_is_stale() -> None:
    engine = LivenessEngine()
    online(engine, 0.0, "s1")
    online(engine, 1.0, "s2")
    result = online(engine, 2.0, "s1")
    assert result.outcome is Outcome.STALE_SESSION
    assert session(engine) == "s2"


def test_will_is_held_then_counts_stamped_at_its_arrival() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    result = offline(engine, 10.0)
    assert result.outcome is Outcome.WILL_HELD
    assert result.transitions == ()
    assert state(engine) is State.ONLINE
    assert tick(engine, 11.9) == []
    transitions = engine.tick(12.0, T0 + 12)
    assert transitions == [
        Transition("d1", State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST, T0 + 10, "s1")
    ]
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.state, snap.reason, snap.since_wall) == (
        State.OFFLINE,
        Reason.CONNECTION_LOST,
        T0 + 10,
    )


def test_will_hold_is_configurable() -> None:
    engine = LivenessEngine(will_hold=5.0)
    beat(engine, 0.0, 1)
    offline(engine, 10.0)
    assert tick(engine, 14.9) == []
    assert tick(engine, 15.0) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_new_session_online_within_the_hold_discards_the_will() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 10.0)
    result = online(engine, 11.0, "s2")
    assert result.outcome is Outcome.RECONNECTED
    assert result.transitions == ()
    assert tick(engine, 12.0) == []
    assert tick(engine, 50.9) == []
    assert state(engine) is State.ONLINE
    assert session(engine) == "s2"


def test_new_session_heartbeat_within_the_hold_discards_the_will() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 10.0)
    assert beat(engine, 11.5, 1, session="s2").outcome is Outcome.RECONNECTED
    assert tick(engine, 100.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_takeover_with_the_new_online_first_leaves_the_old_will_stale() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    online(engine, 10.0, "s2")
    result = offline(engine, 10.1, "s1")
    assert result.outcome is Outcome.STALE_SESSION
    assert tick(engine, 20.0) == []
    assert state(engine) is State.ONLINE


def test_will_ends_the_session_at_once() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 10.0)
    # A heartbeat of the dead connection delivered late (another topic) is stale and
    # does not rescue the device.
    assert beat(engine, 10.5, 2).outcome is Outcome.STALE_SESSION
    assert online(engine, 10.6, "s1").outcome is Outcome.STALE_SESSION
    assert tick(engine, 12.0) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_timing_pauses_while_a_will_is_held() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 39.0)
    # The late deadline (40 s) passes inside the hold: the will decides instead.
    assert tick(engine, 40.0) == []
    assert tick(engine, 41.0) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_will_without_a_reason_counts_as_connection_lost() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert offline(engine, 1.0, reason=None).outcome is Outcome.WILL_HELD
    assert tick(engine, 3.0) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]


@pytest.mark.parametrize("start", [State.ONLINE, State.LATE, State.STALE])
def test_shutdown_goes_offline_at_once(start: State) -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    now = {State.ONLINE: 1.0, State.LATE: 40.0, State.STALE: 100.0}[start]
    tick(engine, now)
    assert state(engine) is start
    result = offline(engine, now + 1, reason=SHUTDOWN)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == (
        Transition("d1", start, State.OFFLINE, Reason.SHUTDOWN, T0 + now + 1, "s1"),
    )


@pytest.mark.parametrize("reason", [LOST, SHUTDOWN])
@pytest.mark.parametrize("named", ["s0", "s1"])
def test_offline_naming_another_session_is_ignored(reason: OfflineReason, named: str) -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1, session="s1")
    beat(engine, 1.0, 1, session="s2")
    result = offline(engine, 2.0, named, reason)
    assert result.outcome is Outcome.STALE_SESSION
    assert result.transitions == ()
    assert tick(engine, 10.0) == []
    assert state(engine) is State.ONLINE
    assert beat(engine, 3.0, 2, session="s2").outcome is Outcome.ACCEPTED


def test_will_from_a_device_never_seen_tracks_it_unknown_then_offline() -> None:
    engine = LivenessEngine()
    result = offline(engine, 0.0)
    assert result.outcome is Outcome.WILL_HELD
    assert [(t.old, t.new, t.reason) for t in result.transitions] == [
        (None, State.UNKNOWN, Reason.FIRST_SEEN)
    ]
    assert tick(engine, 2.0) == [(State.UNKNOWN, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_shutdown_from_a_device_never_seen() -> None:
    engine = LivenessEngine()
    result = offline(engine, 0.0, reason=SHUTDOWN)
    assert [(t.old, t.new, t.reason) for t in result.transitions] == [
        (None, State.UNKNOWN, Reason.FIRST_SEEN),
        (State.UNKNOWN, State.OFFLINE, Reason.SHUTDOWN),
    ]


@pytest.mark.parametrize("reason", [LOST, SHUTDOWN])
def test_offline_in_maintenance_is_ignored_but_ends_the_session(reason: OfflineReason) -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.set_maintenance("d1", True, 1.0, T0 + 1)
    result = offline(engine, 2.0, reason=reason)
    assert result.outcome is Outcome.IGNORED_IN_MAINTENANCE
    assert result.transitions == ()
    assert tick(engine, 10.0) == []
    assert state(engine) is State.MAINTENANCE
    assert beat(engine, 3.0, 2).outcome is Outcome.STALE_SESSION
    assert [(t.new, t.reason) for t in engine.set_maintenance("d1", False, 4.0, T0 + 4)] == [
        (State.OFFLINE, Reason.MAINTENANCE_ENDED)
    ]


def test_entering_maintenance_drops_a_held_will() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 5.0)
    engine.set_maintenance("d1", True, 6.0, T0 + 6)
    assert tick(engine, 8.0) == []
    assert state(engine) is State.MAINTENANCE


def test_will_for_a_lost_device_ends_its_session_without_a_transition() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    tick(engine, 100.0 + 86_400.0)
    assert state(engine) is State.LOST
    result = offline(engine, 90_000.0)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == ()
    assert tick(engine, 90_010.0) == []
    assert beat(engine, 90_011.0, 2).outcome is Outcome.STALE_SESSION
    assert [(t.old, t.new) for t in online(engine, 90_012.0, "s2").transitions] == [
        (State.LOST, State.ONLINE)
    ]


def test_offline_device_becomes_lost_after_lost_after() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 10.0)
    tick(engine, 12.0)
    assert tick(engine, 10.0 + 86_399.0) == []
    transitions = engine.tick(10.0 + 86_400.5, T0 + 10.0 + 86_400.5)
    assert transitions == [
        Transition("d1", State.OFFLINE, State.LOST, Reason.GONE, T0 + 10.0 + 86_400.0, "s1")
    ]


def test_retained_online_registers_an_unknown_device() -> None:
    engine = LivenessEngine()
    result = online(engine, 0.0, retained=True)
    assert result.outcome is Outcome.RETAINED_CLAIM
    assert [(t.old, t.new) for t in result.transitions] == [(None, State.UNKNOWN)]
    snap = engine.snapshot("d1")
    assert snap is not None
    assert not snap.confirmed
    assert tick(engine, 40.0) == [(State.UNKNOWN, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_retained_online_for_a_known_device_never_refreshes_it() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    tick(engine, 40.0)
    assert online(engine, 41.0, retained=True).outcome is Outcome.RETAINED_CLAIM
    result = online(engine, 42.0, "s2", retained=True)
    assert result.outcome is Outcome.RETAINED_CLAIM
    assert result.transitions == ()
    assert (state(engine), session(engine)) == (State.LATE, "s2")
    assert tick(engine, 100.0) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]


def test_retained_claim_of_a_new_session_discards_a_held_will() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 10.0)
    online(engine, 11.0, "s2", retained=True)
    assert tick(engine, 12.0) == []
    # Deadlines were not refreshed by the claim: still late at 40 s.
    assert tick(engine, 40.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_retained_will_outside_warmup_is_held_like_a_fresh_one() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    assert offline(engine, 10.0, retained=True).outcome is Outcome.WILL_HELD
    assert tick(engine, 11.0) == []
    assert tick(engine, 12.0) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_retained_shutdown_outside_warmup_counts_at_once() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    result = offline(engine, 10.0, reason=SHUTDOWN, retained=True)
    assert [(t.old, t.new, t.reason) for t in result.transitions] == [
        (State.ONLINE, State.OFFLINE, Reason.SHUTDOWN)
    ]


def test_retained_will_of_an_ended_session_agrees_and_changes_nothing() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    offline(engine, 1.0, reason=SHUTDOWN)
    result = offline(engine, 2.0, retained=True)
    assert result.outcome is Outcome.RETAINED_CLAIM
    assert result.transitions == ()
    # A fresh duplicate of the same will is a stale session.
    assert offline(engine, 3.0).outcome is Outcome.STALE_SESSION

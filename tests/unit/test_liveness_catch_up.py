"""catch_up: what a replica taking over a partition tells that its previous owner did not."""

from __future__ import annotations

from device_client.protocol import Heartbeat, OfflineReason, Presence, PresenceState
from monitor.liveness import LivenessEngine, Reason, State
from monitor.liveness.states import Transition

T0 = 1_700_000_000.0


def beat(engine: LivenessEngine, device: str, now: float, seq: int = 1) -> None:
    engine.heartbeat(device, Heartbeat(seq=seq, session="s1", interval=30.0), now, T0 + now)


def test_nothing_when_the_world_was_told_what_the_engine_holds() -> None:
    engine = LivenessEngine()
    beat(engine, "a", 0.0)
    assert engine.catch_up("a", State.ONLINE) == []
    assert engine.catch_up("unknown-here", State.ONLINE) == []


def test_a_device_that_died_while_another_replica_acted_is_reported_as_of_its_will() -> None:
    engine = LivenessEngine(will_hold=0.0)
    beat(engine, "a", 0.0)
    engine.presence(
        "a",
        Presence(PresenceState.OFFLINE, session="s1", reason=OfflineReason.CONNECTION_LOST),
        5.0,
        T0 + 5.0,
    )
    engine.tick(5.5, T0 + 5.5)
    assert engine.snapshot("a") is not None
    [caught] = engine.catch_up("a", State.ONLINE)
    assert caught == Transition(
        "a", State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST, T0 + 5.0, "s1"
    )
    # The record is unchanged: asking again gives the same answer, nothing was moved.
    assert engine.catch_up("a", State.ONLINE) == [caught]
    assert engine.snapshot("a").state is State.OFFLINE  # type: ignore[union-attr]


def test_a_device_the_world_never_heard_of_first_appears_then_changes() -> None:
    engine = LivenessEngine()
    beat(engine, "a", 0.0)
    [first] = engine.catch_up("a", None)
    assert (first.old, first.new, first.reason) == (None, State.ONLINE, Reason.FIRST_SEEN)
    engine.tick(45.0, T0 + 45.0)  # late
    steps = engine.catch_up("b-none", None) + engine.catch_up("a", None)
    assert [(t.old, t.new, t.reason) for t in steps] == [
        (None, State.ONLINE, Reason.FIRST_SEEN),
        (State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS),
    ]


def test_a_state_no_legal_change_leads_to_gives_no_transition() -> None:
    engine = LivenessEngine()
    beat(engine, "a", 0.0)
    engine.tick(45.0, T0 + 45.0)  # late
    # Told lost, now late: no change in the table goes there; the row is rewritten
    # (touch) rather than a transition that could not happen.
    assert engine.catch_up("a", State.LOST) == []


def test_touch_makes_devices_dirty_for_the_next_drain() -> None:
    engine = LivenessEngine()
    beat(engine, "a", 0.0)
    beat(engine, "b", 0.0)
    engine.drain_dirty()
    engine.touch(["a", "not-tracked"])
    assert [s.device_id for s in engine.drain_dirty()] == ["a"]


def test_listen_first_gives_devices_interval_and_grace_from_now() -> None:
    engine = LivenessEngine()  # default grace 10, interval 30 announced
    beat(engine, "a", 0.0)
    beat(engine, "quiet", 0.0)
    # Taken over at 35 s without having heard them (a broker routing by partition):
    # "a" would be late at 40 s; it is given until 35 + 30 + 10 instead.
    engine.listen_first(["a", "not-tracked"], 35.0)
    assert [t.device_id for t in engine.tick(41.0, T0 + 41.0)] == ["quiet"]
    assert engine.tick(74.0, T0 + 74.0) == []
    [late] = engine.tick(75.5, T0 + 75.5)
    assert (late.device_id, late.new) == ("a", State.LATE)


def test_down_since_finds_only_devices_down_since_then_with_a_reason() -> None:
    engine = LivenessEngine(will_hold=0.0)
    for device in ("early", "late-down", "up", "shut"):
        beat(engine, device, 0.0)
    engine.presence(
        "early",
        Presence(PresenceState.OFFLINE, session="s1", reason=OfflineReason.CONNECTION_LOST),
        1.0,
        T0 + 1.0,
    )
    engine.presence(
        "late-down",
        Presence(PresenceState.OFFLINE, session="s1", reason=OfflineReason.CONNECTION_LOST),
        20.0,
        T0 + 20.0,
    )
    engine.presence(
        "shut",
        Presence(PresenceState.OFFLINE, session="s1", reason=OfflineReason.SHUTDOWN),
        21.0,
        T0 + 21.0,
    )
    engine.tick(22.0, T0 + 22.0)
    down = {State.OFFLINE, State.STALE, State.LOST, State.LATE}
    found = engine.down_since(["early", "late-down", "up", "shut", "nobody"], down, T0 + 10.0)
    assert [(s.device_id, s.state) for s in found] == [
        ("late-down", State.OFFLINE),
        ("shut", State.OFFLINE),
    ]
    assert found[0] == engine.snapshot("late-down")
    assert engine.down_since(["late-down"], {State.STALE}, T0) == []

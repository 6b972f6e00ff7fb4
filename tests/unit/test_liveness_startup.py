"""Restart (load + warm-up) and blind periods (suspend/resume), step by step (R13-R15).

The monitor "restarts" at ``now = 1000`` with wall clock ``T0 + 1000``; persisted wall
times are written relative to that. Default timing: late 40 s, stale 100 s after the
last heartbeat; warm-up lasts max(interval + grace) = 40 s.
"""

from __future__ import annotations

import pytest

from device_client.protocol import Heartbeat, OfflineReason, Presence, PresenceState
from monitor.liveness import (
    DeviceSnapshot,
    EventResult,
    InvalidPolicy,
    LivenessEngine,
    Outcome,
    Policy,
    Reason,
    State,
    Transition,
)

T0 = 1_700_000_000.0
START = 1000.0
WALL = T0 + START
DAY = 86_400.0


def persisted(
    state: State,
    *,
    since_ago: float = 500.0,
    seen_ago: float | None = 10.0,
    reason: Reason | None = Reason.HEARTBEAT,
    session: str = "s1",
    device: str = "d1",
    in_maintenance: bool = False,
) -> DeviceSnapshot:
    return DeviceSnapshot(
        device_id=device,
        state=state,
        since_wall=WALL - since_ago,
        reason=reason,
        session=session,
        last_seq=41,
        last_seen_wall=None if seen_ago is None else WALL - seen_ago,
        announced_interval=30.0,
        in_maintenance=in_maintenance,
    )


def restarted(*snaps: DeviceSnapshot, warmup: bool = True) -> LivenessEngine:
    engine = LivenessEngine()
    assert engine.load(snaps, START, WALL) == len(snaps)
    if warmup:
        assert engine.start_warmup(START) == START + 40.0
    return engine


def beat(
    engine: LivenessEngine, now: float, seq: int, *, session: str = "s1", retained: bool = False
) -> EventResult:
    heartbeat = Heartbeat(seq=seq, session=session, interval=30.0)
    return engine.heartbeat("d1", heartbeat, now, T0 + now, retained=retained)


def presence(
    engine: LivenessEngine,
    now: float,
    state: PresenceState,
    session: str = "s1",
    reason: OfflineReason | None = None,
    *,
    retained: bool = False,
) -> EventResult:
    return engine.presence("d1", Presence(state, session, reason), now, T0 + now, retained=retained)


def tick(engine: LivenessEngine, now: float) -> list[tuple[object, ...]]:
    return [(t.old, t.new, t.reason) for t in engine.tick(now, T0 + now)]


def state(engine: LivenessEngine, device: str = "d1") -> State:
    snap = engine.snapshot(device)
    assert snap is not None
    return snap.state


# ----------------------------------------------------------------------------- load


def test_load_keeps_persisted_state_unconfirmed() -> None:
    snap = persisted(State.ONLINE)
    engine = restarted(snap, warmup=False)
    loaded = engine.snapshot("d1")
    assert loaded is not None
    assert loaded == DeviceSnapshot(
        device_id="d1",
        state=State.ONLINE,
        since_wall=WALL - 500,
        reason=Reason.HEARTBEAT,
        session="s1",
        last_seq=41,
        last_seen_wall=WALL - 10,
        announced_interval=30.0,
        effective_interval=30.0,
        confirmed=False,
    )
    assert engine.counts()[State.ONLINE] == 1
    # Loading writes nothing back.
    assert engine.drain_dirty() == []


def test_load_round_trips_through_snapshots() -> None:
    engine = LivenessEngine()
    engine.heartbeat("a", Heartbeat(seq=3, session="x", interval=12.0), 0.0, T0)
    engine.set_class("a", "pumps")
    engine.set_interval_override("a", 20.0)
    engine.heartbeat("b", Heartbeat(seq=1, session="y", interval=30.0), 0.0, T0)
    engine.set_maintenance("b", True, 1.0, T0 + 1)
    again = LivenessEngine()
    again.load(engine.snapshots(), 5.0, T0 + 5)
    for device in ("a", "b"):
        before, after = engine.snapshot(device), again.snapshot(device)
        assert before is not None
        assert after is not None
        assert after.state == before.state
        assert (after.session, after.last_seq, after.last_seen_wall) == (
            before.session,
            before.last_seq,
            before.last_seen_wall,
        )
        assert after.device_class == before.device_class
        assert after.override_interval == before.override_interval
        assert after.effective_interval == before.effective_interval


def test_load_skips_devices_already_tracked() -> None:
    engine = LivenessEngine()
    beat(engine, START, 1)
    assert engine.load([persisted(State.STALE)], START, WALL) == 0
    assert state(engine) is State.ONLINE


def test_load_honours_in_maintenance() -> None:
    engine = restarted(persisted(State.MAINTENANCE, in_maintenance=True, seen_ago=10 * DAY))
    assert tick(engine, START + 10 * DAY) == []
    assert state(engine) is State.MAINTENANCE


# -------------------------------------------------------------------------- warm-up


def test_warmup_length_defaults_to_the_longest_interval_plus_grace() -> None:
    engine = LivenessEngine(classes={"slow": Policy(interval=300.0, grace=20.0)})
    assert engine.start_warmup(START) == START + 320.0
    assert engine.start_warmup(START, 5.0) == START + 5.0


def test_no_device_times_out_during_warmup_then_one_verdict_each() -> None:
    engine = restarted(
        persisted(State.ONLINE, device="gone-a-while", seen_ago=200.0),
        persisted(State.ONLINE, device="gone-for-days", since_ago=4 * DAY, seen_ago=3 * DAY),
        persisted(State.LATE, device="was-late", seen_ago=50.0),
    )
    for now in (START, START + 10, START + 39.9):
        assert engine.tick(now, T0 + now) == []
    assert engine.warming_up
    transitions = engine.tick(START + 40, WALL + 40)
    assert not engine.warming_up
    assert {t.device_id: (t.old, t.new, t.reason, t.at_wall) for t in transitions} == {
        # Straight to stale, no separate late step; stamped when it went stale.
        "gone-a-while": (State.ONLINE, State.STALE, Reason.STOPPED_BEATING, WALL - 100),
        "gone-for-days": (State.ONLINE, State.LOST, Reason.GONE, WALL - 3 * DAY + 100 + DAY),
        # Last seen 50 s before the restart: stale at 100 s, i.e. START + 50.
    }
    assert state(engine, "was-late") is State.LATE
    assert [(t.device_id, t.new) for t in engine.tick(START + 50, WALL + 50)] == [
        ("was-late", State.STALE)
    ]
    # Verdicts are given once.
    assert engine.tick(START + 60, WALL + 60) == []


def test_devices_with_future_deadlines_keep_running_after_warmup() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=5.0), warmup=False)
    engine.start_warmup(START, 10.0)
    assert tick(engine, START + 10) == []
    assert tick(engine, START + 34.9) == []
    assert tick(engine, START + 35) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_device_beating_during_warmup_stays_online_without_a_transition() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=200.0))
    result = beat(engine, START + 5, 42)
    assert result.outcome is Outcome.ACCEPTED
    assert result.transitions == ()
    assert tick(engine, START + 40) == []
    snap = engine.snapshot("d1")
    assert snap is not None
    assert (snap.state, snap.confirmed) == (State.ONLINE, True)


def test_device_persisted_stale_that_beats_during_warmup_comes_online() -> None:
    engine = restarted(persisted(State.STALE, reason=Reason.STOPPED_BEATING))
    assert [(t.old, t.new) for t in beat(engine, START + 5, 42).transitions] == [
        (State.STALE, State.ONLINE)
    ]


def test_duplicate_of_the_persisted_seq_is_detected_after_restart() -> None:
    engine = restarted(persisted(State.ONLINE))
    assert beat(engine, START + 1, 41).outcome is Outcome.DUPLICATE


def test_persisted_state_worse_than_the_evidence_is_kept() -> None:
    # Stale in the database although last seen 10 s ago (the state write landed, the
    # next heartbeat's did not): only a fresh heartbeat may bring it back.
    engine = restarted(persisted(State.STALE, since_ago=20.0, reason=Reason.STOPPED_BEATING))
    assert tick(engine, START + 40) == []
    assert state(engine) is State.STALE
    # Its lost clock runs from the persisted since.
    assert tick(engine, START - 20 + DAY - 1) == []
    assert tick(engine, START - 20 + DAY) == [(State.STALE, State.LOST, Reason.GONE)]


def test_persisted_offline_device_keeps_its_ended_session() -> None:
    engine = restarted(persisted(State.OFFLINE, reason=Reason.CONNECTION_LOST))
    assert beat(engine, START + 1, 42).outcome is Outcome.STALE_SESSION
    assert [(t.old, t.new) for t in beat(engine, START + 2, 1, session="s2").transitions] == [
        (State.OFFLINE, State.ONLINE)
    ]


def test_persisted_lost_device_accepts_its_session_again() -> None:
    engine = restarted(persisted(State.LOST, reason=Reason.GONE, seen_ago=5 * DAY))
    assert tick(engine, START + 40) == []
    assert [(t.old, t.new) for t in beat(engine, START + 41, 42).transitions] == [
        (State.LOST, State.ONLINE)
    ]


def test_retained_will_during_warmup_is_held_until_warmup_ends() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=1.0))
    result = presence(engine, START + 0.1, PresenceState.OFFLINE, "s1", retained=True)
    assert result.outcome is Outcome.WILL_HELD
    assert tick(engine, START + 5) == []
    assert tick(engine, START + 39.9) == []
    # Offline as of the will's arrival (the connection was dead by then), not as of
    # the moment warm-up ended and the monitor judged.
    assert engine.tick(START + 40, WALL + 40) == [
        Transition("d1", State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST, WALL + 0.1, "s1")
    ]
    assert tick(engine, START + 200) == []
    # The lost clock runs from the will's arrival too.
    assert tick(engine, START + 0.1 + DAY - 1) == []
    assert engine.tick(START + 0.1 + DAY, WALL + 0.1 + DAY) == [
        Transition("d1", State.OFFLINE, State.LOST, Reason.GONE, WALL + 0.1 + DAY, "s1")
    ]


def test_retained_shutdown_during_warmup_is_held_too() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=1.0))
    presence(engine, START, PresenceState.OFFLINE, "s1", OfflineReason.SHUTDOWN, retained=True)
    assert state(engine) is State.ONLINE
    assert tick(engine, START + 40) == [(State.ONLINE, State.OFFLINE, Reason.SHUTDOWN)]


def test_new_session_during_warmup_discards_a_held_retained_will() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=1.0))
    presence(engine, START, PresenceState.OFFLINE, "s1", retained=True)
    presence(engine, START + 3, PresenceState.ONLINE, "s2")
    assert tick(engine, START + 40) == []
    assert state(engine) is State.ONLINE


def test_retained_will_of_another_session_during_warmup_is_stale() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=1.0))
    result = presence(engine, START, PresenceState.OFFLINE, "s0", retained=True)
    assert result.outcome is Outcome.STALE_SESSION
    # Nothing held: at the end of warm-up the device is judged by its deadlines only.
    assert tick(engine, START + 40) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_retained_will_from_an_unknown_device_during_warmup() -> None:
    engine = LivenessEngine()
    engine.start_warmup(START)
    result = presence(engine, START, PresenceState.OFFLINE, "s9", retained=True)
    assert result.outcome is Outcome.WILL_HELD
    assert [(t.old, t.new) for t in result.transitions] == [(None, State.UNKNOWN)]
    assert tick(engine, START + 40) == [(State.UNKNOWN, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_fresh_will_during_warmup_resolves_after_the_hold() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=1.0))
    presence(engine, START + 1, PresenceState.OFFLINE, "s1")
    assert tick(engine, START + 3) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]
    assert engine.warming_up


def test_retained_claim_during_warmup_does_not_confirm_or_refresh() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=200.0))
    assert beat(engine, START + 1, 42, retained=True).outcome is Outcome.RETAINED_CLAIM
    assert tick(engine, START + 40) == [(State.ONLINE, State.STALE, Reason.STOPPED_BEATING)]


def test_device_heard_fresh_during_warmup_is_judged_by_its_own_deadlines() -> None:
    # A long warm-up (a slow class): the device beat at start, then fell silent. It goes
    # late, then stale, on its own deadlines -- not online -> stale when warm-up ends.
    engine = restarted(persisted(State.ONLINE, seen_ago=200.0), warmup=False)
    engine.start_warmup(START, 300.0)
    beat(engine, START + 1, 42)
    assert engine.tick(START + 40.9, WALL + 40.9) == []
    assert engine.tick(START + 41, WALL + 41) == [
        Transition("d1", State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS, WALL + 41, "s1")
    ]
    assert tick(engine, START + 100.9) == []
    assert tick(engine, START + 101) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]
    assert engine.warming_up
    assert tick(engine, START + 300) == []


def test_new_device_heard_during_warmup_is_judged_by_its_own_deadlines() -> None:
    engine = LivenessEngine()
    engine.start_warmup(START, 300.0)
    assert [(t.old, t.new) for t in beat(engine, START + 5, 0).transitions] == [
        (None, State.ONLINE)
    ]
    assert tick(engine, START + 45) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_unconfirmed_device_waits_for_warmup_end_even_after_others_are_judged() -> None:
    engine = restarted(
        persisted(State.ONLINE, device="quiet", seen_ago=200.0),
        persisted(State.ONLINE, device="d1", seen_ago=200.0),
        warmup=False,
    )
    engine.start_warmup(START, 300.0)
    # Both deadlines are long past: the tick parks both until warm-up ends...
    assert tick(engine, START) == []
    # ...then d1 beats: from now on it runs on its own deadlines, the quiet one waits.
    beat(engine, START + 10, 42)
    assert [(t.device_id, t.new) for t in engine.tick(START + 50, WALL + 50)] == [
        ("d1", State.LATE)
    ]
    assert tick(engine, START + 299.9) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]
    assert state(engine, "quiet") is State.ONLINE
    assert [(t.device_id, t.new) for t in engine.tick(START + 300, WALL + 300)] == [
        ("quiet", State.STALE)
    ]


def test_blindness_during_warmup_rearms_devices_heard_fresh() -> None:
    engine = restarted(warmup=False)
    engine.start_warmup(START, 300.0)
    beat(engine, START + 1, 0)
    engine.suspend(START + 5)
    engine.resume(START + 100)
    # Not blamed for the blind period: interval + grace after regaining sight.
    assert tick(engine, START + 139.9) == []
    assert tick(engine, START + 140) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]
    assert engine.warming_up


# --------------------------------------------------------------------------- blind


def test_suspend_freezes_every_timeout() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.suspend(10.0)
    assert engine.blind_since == 10.0
    assert tick(engine, 40.0) == []
    assert tick(engine, 10 * DAY) == []
    assert state(engine) is State.ONLINE


def test_resume_gives_every_device_interval_plus_grace() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.suspend(10.0)
    engine.resume(500.0)
    assert engine.blind_since is None
    assert tick(engine, 500.0) == []
    assert tick(engine, 539.9) == []
    assert tick(engine, 540.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]
    # The next step is counted from the re-arm, not from the old heartbeat.
    assert tick(engine, 599.9) == []
    assert tick(engine, 600.0) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]


def test_resume_never_brings_a_deadline_earlier() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.suspend(1.0)
    engine.resume(2.0)
    assert tick(engine, 41.9) == []
    # The floor (2 + 40) is later than the original deadline (40) and wins.
    assert tick(engine, 42.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_a_device_late_before_blindness_gets_time_too() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    tick(engine, 40.0)
    engine.suspend(50.0)
    engine.resume(95.0)
    assert tick(engine, 134.9) == []
    assert tick(engine, 135.0) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]


def test_heartbeat_after_resume_counts_normally() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.suspend(10.0)
    engine.resume(500.0)
    beat(engine, 501.0, 2)
    assert tick(engine, 540.9) == []
    assert tick(engine, 541.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


def test_a_will_held_across_blindness_waits_as_long_as_a_deadline() -> None:
    # A broker that goes down publishes every connected device's will, then drops the
    # monitor: each device needs its reconnect time (interval + grace), not the hold.
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    presence(engine, 10.0, PresenceState.OFFLINE, "s1")
    engine.suspend(11.0)
    engine.resume(100.0)
    assert tick(engine, 139.9) == []
    transitions = engine.tick(140.0, T0 + 140)
    # Still stamped when the will arrived.
    assert [(t.new, t.at_wall) for t in transitions] == [(State.OFFLINE, T0 + 10)]


def test_a_will_arriving_while_blind_waits_as_long_as_a_deadline() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.suspend(5.0)
    presence(engine, 10.0, PresenceState.OFFLINE, "s1")
    engine.resume(20.0)
    assert tick(engine, 59.9) == []
    assert tick(engine, 60.0) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_a_retained_will_replayed_after_blindness_waits_for_the_new_session() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.suspend(5.0)
    engine.resume(20.0)
    # The resubscription replays the will the broker published when it went down.
    result = presence(engine, 20.1, PresenceState.OFFLINE, "s1", retained=True)
    assert result.outcome is Outcome.WILL_HELD
    assert tick(engine, 25.0) == []
    # The device reconnects well after will_hold, within interval + grace: no verdict.
    presence(engine, 30.0, PresenceState.ONLINE, "s2")
    assert tick(engine, 69.9) == []
    assert state(engine) is State.ONLINE


def test_a_will_after_sight_returned_gets_the_usual_hold() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.suspend(5.0)
    engine.resume(6.0)
    beat(engine, 7.0, 2)
    presence(engine, 10.0, PresenceState.OFFLINE, "s1")
    assert tick(engine, 11.9) == []
    assert tick(engine, 12.0) == [(State.ONLINE, State.OFFLINE, Reason.CONNECTION_LOST)]


def test_suspend_and_resume_are_idempotent() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 1)
    engine.resume(5.0)  # not suspended: no floor
    assert tick(engine, 40.0) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]
    engine.suspend(50.0)
    engine.suspend(60.0)
    assert engine.blind_since == 50.0
    engine.resume(70.0)
    engine.resume(90.0)
    assert tick(engine, 109.9) == []
    assert tick(engine, 110.0) == [(State.LATE, State.STALE, Reason.STOPPED_BEATING)]


def test_events_while_blind_are_still_processed() -> None:
    engine = LivenessEngine()
    engine.suspend(0.0)
    result = beat(engine, 1.0, 1)
    assert result.outcome is Outcome.ACCEPTED
    assert state(engine) is State.ONLINE


def test_blindness_during_warmup_extends_warmup_then_judges_evidence() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=200.0))
    engine.suspend(START + 10)
    assert tick(engine, START + 100) == []
    engine.resume(START + 100)
    # A full warm-up of listening after regaining sight...
    assert tick(engine, START + 100) == []
    assert tick(engine, START + 139.9) == []
    assert engine.warming_up
    # ...then the verdict from the persisted evidence, straight to stale.
    assert engine.tick(START + 140, WALL + 140) == [
        Transition("d1", State.ONLINE, State.STALE, Reason.STOPPED_BEATING, WALL - 100, "s1")
    ]


@pytest.mark.parametrize("order", ["warmup-then-resume", "resume-then-warmup"])
def test_starting_blind_then_warming_up_judges_persisted_evidence(order: str) -> None:
    # The shell's start-up: blind until the first connection, then warm-up + resume.
    engine = LivenessEngine()
    engine.suspend(START - 5)
    engine.load(
        [
            persisted(State.ONLINE, device="quiet", seen_ago=600.0),
            persisted(State.ONLINE, device="fresh", seen_ago=1.0),
        ],
        START,
        WALL,
    )
    if order == "warmup-then-resume":
        engine.start_warmup(START, 20.0)
        engine.resume(START)
    else:
        engine.resume(START)
        engine.start_warmup(START, 20.0)
    assert engine.tick(START + 19.9, WALL + 19.9) == []
    # Straight to stale from the persisted evidence -- not re-armed as after a blind
    # period, which would have made it merely late at START + 40.
    assert [(t.device_id, t.new, t.at_wall) for t in engine.tick(START + 20, WALL + 20)] == [
        ("quiet", State.STALE, WALL - 500)
    ]
    # Deadlines still in the future run normally: late 40 s after its last heartbeat.
    assert engine.tick(START + 38.9, WALL + 38.9) == []
    assert [(t.device_id, t.new) for t in engine.tick(START + 39, WALL + 39)] == [
        ("fresh", State.LATE)
    ]


def test_a_blind_period_after_warmup_rearms_as_usual() -> None:
    engine = restarted(persisted(State.ONLINE, seen_ago=1.0), warmup=False)
    engine.start_warmup(START, 5.0)
    tick(engine, START + 5)
    engine.suspend(START + 10)
    engine.resume(START + 60)
    assert tick(engine, START + 99.9) == []
    assert tick(engine, START + 100) == [(State.ONLINE, State.LATE, Reason.MISSED_HEARTBEATS)]


@pytest.mark.parametrize("duration", [-1.0, float("inf"), float("nan")])
def test_bad_warmup_duration_is_refused(duration: float) -> None:
    with pytest.raises(InvalidPolicy):
        LivenessEngine().start_warmup(0.0, duration)


def test_a_load_takes_plain_tuples_with_the_stored_words() -> None:
    engine = LivenessEngine()
    engine.heartbeat("tracked", Heartbeat(seq=1, session="s9", interval=30.0), START, WALL)
    rows = [
        # device, state, since, reason, session, seq, last seen, announced, override,
        # class, maintenance (SQLite's 0/1), clock offset
        ("d1", "late", WALL - 50, "missed-heartbeats", "s1", 7, WALL - 50, 30.0, None,
         "default", 0, 2.5),
        ("d2", "napping", WALL - 5, "dozed-off", None, None, None, None, 60.0,
         "no-such-class", 0, None),
        ("d3", "online", WALL - 5, "heartbeat", "s3", 1, WALL - 5, 30.0, None,
         "default", 1, None),
        ("tracked", "offline", WALL - 5, "shutdown", "s0", 1, WALL - 5, 30.0, None,
         "default", 0, None),
    ]  # fmt: skip
    assert engine.load_persisted(rows, START, WALL) == 3
    d1, d2, d3 = (engine.snapshot(d) for d in ("d1", "d2", "d3"))
    assert d1 is not None
    assert d2 is not None
    assert d3 is not None
    assert (d1.state, d1.reason, d1.last_seq, d1.clock_offset) == (
        State.LATE, Reason.MISSED_HEARTBEATS, 7, 2.5
    )  # fmt: skip
    # Words this version does not know: unknown state, no reason; an unknown class is
    # judged by the default one.
    assert (d2.state, d2.reason, d2.effective_interval) == (State.UNKNOWN, None, 60.0)
    assert d3.state is State.MAINTENANCE
    assert d3.in_maintenance
    # What the engine saw since start wins over the database.
    tracked = engine.snapshot("tracked")
    assert tracked is not None
    assert tracked.state is State.ONLINE
    # Late since WALL - 50 with a 30 s interval: stale at last seen + 100 s, 50 s from now.
    # (No warm-up here: "tracked" goes late on its own, d2 waits for its 60 s.)
    early = engine.tick(START + 49, WALL + 49)
    assert [(t.device_id, t.new) for t in early] == [("tracked", State.LATE)]
    stale = engine.tick(START + 51, WALL + 51)
    assert [(t.device_id, t.new) for t in stale] == [("d1", State.STALE)]

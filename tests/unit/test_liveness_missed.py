"""Missed heartbeats, step by step: counted while missed, inside one session (R18).

Times are explicit: ``now`` is the monotonic clock, the wall clock is ``T0 + now``.
Default timing: interval 30 s (announced), grace 10 s, missed_limit 3 -> late at 40 s,
stale at 100 s. A beat due at ``k x 30`` counts as missed from ``k x 30 + 15``.
"""

from __future__ import annotations

from device_client.protocol import Heartbeat, OfflineReason, Presence, PresenceState
from monitor.liveness import DeviceSnapshot, EventResult, LivenessEngine, Reason, State
from monitor.liveness.missed import missed_between

T0 = 1_700_000_000.0
DAY = 86_400.0


def beat(engine: LivenessEngine, now: float, seq: int, *, session: str = "s1") -> EventResult:
    heartbeat = Heartbeat(seq=seq, session=session, interval=30.0)
    return engine.heartbeat("d1", heartbeat, now, T0 + now)


def presence(
    engine: LivenessEngine,
    now: float,
    state: PresenceState,
    session: str,
    reason: OfflineReason | None = None,
) -> EventResult:
    return engine.presence("d1", Presence(state, session, reason), now, T0 + now)


def tick(engine: LivenessEngine, now: float) -> list[State]:
    return [t.new for t in engine.tick(now, T0 + now)]


def swept(engine: LivenessEngine, now: float) -> int:
    """Tick, then count what the shell's flush would: the beats missed by ``now``."""
    engine.tick(now, T0 + now)
    found = dict(engine.count_missed(now))
    assert set(found) <= {"d1"}
    return found.get("d1", 0)


def test_a_beat_is_missed_half_an_interval_after_it_was_due() -> None:
    table = {0.0: 0, 10.0: 0, 44.9: 0, 45.0: 1, 60.0: 1, 74.9: 1, 75.0: 2, 200.0: 6, 840.0: 27}
    assert {gap: missed_between(0.0, gap, 30.0) for gap in table} == table
    assert missed_between(10.0, 5.0, 30.0) == 0


def test_a_silent_device_counts_its_beats_while_they_are_missed() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    # Online: nothing is swept (the next heartbeat tops up any gap).
    assert swept(engine, 39.0) == 0
    assert tick(engine, 40.0) == [State.LATE]
    assert swept(engine, 44.9) == 0
    assert swept(engine, 45.0) == 1  # the beat due at 30 s
    assert swept(engine, 74.9) == 0
    assert swept(engine, 100.0) == 1  # due at 60 s; stale now
    assert engine.snapshot("d1").state is State.STALE  # type: ignore[union-attr]
    # Fourteen minutes of silence: one beat owed per interval, counted as it falls due.
    total = 2 + sum(swept(engine, t) for t in range(101, 841))
    assert total == missed_between(0.0, 840.0, 30.0) == 27
    # The heartbeat that ends the silence adds only what was not counted yet.
    result = beat(engine, 850.0, 1)
    assert (result.missed, result.gap) == (0, 850.0)
    assert swept(engine, 880.0) == 0


def test_the_next_heartbeat_tops_up_what_no_sweep_counted() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    result = beat(engine, 95.0, 1)  # no sweep in between
    assert (result.missed, result.gap) == (2, 95.0)
    result = beat(engine, 125.0, 2)
    assert (result.missed, result.gap) == (0, 30.0)


def test_nothing_is_counted_across_a_clean_shutdown_and_a_new_session() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    presence(engine, 5.0, PresenceState.OFFLINE, "s1", OfflineReason.SHUTDOWN)
    assert swept(engine, 1000.0) == 0
    # The new session announces itself, then beats: its first beat owes nothing.
    presence(engine, 1000.0, PresenceState.ONLINE, "s2")
    result = beat(engine, 1000.2, 0, session="s2")
    assert (result.missed, result.gap) == (0, None)
    result = beat(engine, 1030.2, 1, session="s2")
    assert (result.missed, result.gap) == (0, 30.0)


def test_nothing_is_counted_across_a_reconnect() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    beat(engine, 30.0, 1)
    # Reconnected without a will resolving (quick takeover), online first...
    presence(engine, 400.0, PresenceState.ONLINE, "s2")
    assert beat(engine, 400.1, 0, session="s2").missed == 0
    # ...or heartbeat first.
    result = beat(engine, 800.0, 0, session="s3")
    assert (result.missed, result.gap) == (0, None)


def test_a_new_session_of_a_stale_device_owes_from_its_start() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    assert swept(engine, 100.0) == 2  # due at 30 and 60 s
    presence(engine, 200.0, PresenceState.ONLINE, "s2")
    # The new session is silent too: owed from its announcement, not from 0.
    assert swept(engine, 244.9) == 0
    assert tick(engine, 240.0) == []
    assert swept(engine, 245.0) == 1


def test_offline_and_lost_devices_owe_nothing() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    presence(engine, 50.0, PresenceState.OFFLINE, "s1", OfflineReason.CONNECTION_LOST)
    assert tick(engine, 52.0) == [State.OFFLINE]
    assert swept(engine, 500.0) == 0

    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    counted = sum(swept(engine, t) for t in (45.0, 100.0, 99.0 + DAY))
    assert tick(engine, 100.0 + DAY) == [State.LOST]
    assert swept(engine, 100.0 + 2 * DAY) == 0
    # A lost device that beats again in its session adds nothing for the time it was lost.
    assert beat(engine, 100.0 + 2 * DAY, 1).missed == 0
    assert counted == missed_between(0.0, 99.0 + DAY, 30.0)


def test_blind_periods_owe_nothing() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    assert swept(engine, 100.0) == 2
    engine.suspend(110.0)
    assert engine.count_missed(500.0) == []
    engine.resume(500.0)
    # Owed again from the moment the monitor regained sight.
    assert swept(engine, 544.9) == 0
    assert swept(engine, 545.0) == 1
    result = beat(engine, 560.0, 1)
    assert (result.missed, result.gap) == (0, None)


def test_a_backlog_read_while_blind_owes_nothing() -> None:
    # The monitor froze: the device kept beating and the broker queued its heartbeats,
    # which the monitor reads in a burst once it notices, still blind.
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    engine.suspend(200.0)
    for seq in range(1, 7):
        result = beat(engine, 200.0 + seq * 0.01, seq)
        assert (result.missed, result.gap) == (0, None)
    engine.resume(201.0)
    assert swept(engine, 230.0) == 0
    result = beat(engine, 231.0, 7)
    assert (result.missed, result.gap) == (0, None)  # the reference is the resume
    assert beat(engine, 261.0, 8).gap == 30.0


def test_maintenance_owes_nothing() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0)
    assert swept(engine, 45.0) == 1
    engine.set_maintenance("d1", True, 50.0, T0 + 50)
    assert swept(engine, 1000.0) == 0
    assert [t.new for t in engine.set_maintenance("d1", False, 1000.0, T0 + 1000)] == [State.STALE]
    assert swept(engine, 1044.9) == 0
    assert swept(engine, 1045.0) == 1


def test_a_restarted_monitor_owes_nothing_for_its_own_downtime() -> None:
    start, wall = 1000.0, T0 + 1000.0
    engine = LivenessEngine()
    engine.suspend(start - 1)  # the shell starts blind
    snaps = [
        DeviceSnapshot(
            device_id="d1",
            state=State.ONLINE,
            since_wall=wall - 900,
            reason=Reason.HEARTBEAT,
            session="s1",
            last_seq=5,
            last_seen_wall=wall - 600,  # the monitor was down for ten minutes
            announced_interval=30.0,
        ),
        DeviceSnapshot(
            device_id="quiet",
            state=State.STALE,
            since_wall=wall - 900,
            reason=Reason.STOPPED_BEATING,
            session="q1",
            last_seen_wall=wall - 1000,
            announced_interval=30.0,
        ),
    ]
    engine.load(snaps, start, wall)
    engine.start_warmup(start + 2, 40.0)
    engine.resume(start + 2)
    # The device kept beating in its session while the monitor was down.
    result = beat(engine, start + 10, 6)
    assert (result.missed, result.gap) == (0, None)
    # The stale one owes beats from when the monitor could hear it.
    assert engine.count_missed(start + 2 + 44.9) == []
    assert engine.count_missed(start + 2 + 45.0) == [("quiet", 1)]

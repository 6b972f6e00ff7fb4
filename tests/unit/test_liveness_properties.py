"""Property tests: random event sequences against invariants of the engine.

Each example drives two devices through heartbeats (fresh and retained), presence,
wills, shutdowns, maintenance, overrides, class changes, warm-up, blind periods and
ticks, with time moving forward by random steps, and checks after every step:

* counts() equals a recount of every device's state;
* every transition is in the table, starts from the state the previous transition
  left, and a device's state never changes without a reported transition;
* transitions of a device are stamped in order and never in the future;
* no tick gives a transition while suspended, and during warm-up only wills resolve;
* ignored events (duplicates, stale sessions, retained claims) change nothing;
* a timing verdict never fires for a device whose deadline a heartbeat moved later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from device_client.protocol import Heartbeat, OfflineReason, Presence, PresenceState
from monitor.liveness import (
    ALLOWED_TRANSITIONS,
    DEFAULT_CLASS,
    EventResult,
    LivenessEngine,
    Outcome,
    Policy,
    Reason,
    State,
    Transition,
)

T0 = 1_700_000_000.0
DEVICES = ("a", "b")
SESSIONS = ("s1", "s2", "s3")
TIMED = {Reason.MISSED_HEARTBEATS, Reason.STOPPED_BEATING, Reason.GONE}
CLASS_SETS: tuple[dict[str, Policy], ...] = (
    {"default": Policy(grace=5.0, missed_limit=2, lost_after=300.0)},
    {"default": Policy(grace=1.0, missed_limit=1, lost_after=60.0)},
    {"default": Policy(interval=20.0, grace=3.0, missed_limit=3, lost_after=120.0)},
)

small_dt = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 7.5, 15.0, 40.0, 120.0])
device = st.sampled_from(DEVICES)
session = st.sampled_from(SESSIONS)

operation = st.one_of(
    st.tuples(st.just("beat"), small_dt, device, session, st.integers(0, 4),
              st.sampled_from([5.0, 10.0, 30.0]), st.booleans()),
    st.tuples(st.just("online"), small_dt, device, session, st.booleans()),
    st.tuples(st.just("offline"), small_dt, device, session,
              st.sampled_from([OfflineReason.CONNECTION_LOST, OfflineReason.SHUTDOWN]),
              st.booleans()),
    st.tuples(st.just("tick"), small_dt),
    st.tuples(st.just("tick"), st.sampled_from([100.0, 400.0, 5000.0])),
    st.tuples(st.just("maintenance"), small_dt, device, st.booleans()),
    st.tuples(st.just("override"), small_dt, device, st.sampled_from([None, 2.0, 60.0])),
    st.tuples(st.just("classes"), small_dt, st.integers(0, len(CLASS_SETS) - 1)),
    st.tuples(st.just("forget"), small_dt, device),
    st.tuples(st.just("suspend"), small_dt),
    st.tuples(st.just("resume"), small_dt),
    st.tuples(st.just("warmup"), small_dt, st.sampled_from([None, 5.0, 50.0])),
)  # fmt: skip


@dataclass
class Observer:
    """What the outside world has learned from the engine's outputs alone."""

    engine: LivenessEngine
    now: float = 0.0
    states: dict[str, State] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)
    last_beat: dict[str, float] = field(default_factory=dict)
    warmup_end: float | None = None

    @property
    def wall(self) -> float:
        return T0 + self.now

    def record(self, transitions: tuple[Transition, ...] | list[Transition]) -> None:
        for t in transitions:
            assert t.reason in ALLOWED_TRANSITIONS[(t.old, t.new)]
            assert t.old == self.states.get(t.device_id)
            assert t.at_wall <= self.wall
            assert t.at_wall >= self.stamps.get(t.device_id, -1.0)
            self.states[t.device_id] = t.new
            self.stamps[t.device_id] = t.at_wall

    def check(self) -> None:
        snaps = {s.device_id: s for s in self.engine.snapshots()}
        assert {d: s.state for d, s in snaps.items()} == self.states
        recount = Counter(s.state for s in snaps.values())
        assert self.engine.counts() == {state: recount[state] for state in State}

    def check_timing(self, transitions: list[Transition]) -> None:
        for t in transitions:
            if t.reason not in TIMED or t.device_id not in self.last_beat:
                continue
            snap = self.engine.snapshot(t.device_id)
            assert snap is not None
            assert snap.effective_interval is not None
            grace = self.engine.classes.get(
                snap.device_class, self.engine.classes[DEFAULT_CLASS]
            ).grace
            # The verdict needs a full interval + grace of silence since the last
            # accepted heartbeat: the deadline that heartbeat set must have passed.
            silence = self.now - self.last_beat[t.device_id]
            assert silence >= snap.effective_interval + grace - 1e-9


def _unchanged(before: Any, after: Any, result: EventResult) -> None:
    assert result.transitions == ()
    assert before == after


def apply(obs: Observer, op: tuple[Any, ...]) -> None:
    engine = obs.engine
    kind, dt = op[0], op[1]
    obs.now += dt
    now, wall = obs.now, obs.wall
    if kind == "tick":
        was_blind = engine.blind_since is not None
        confirmed = {snap.device_id for snap in engine.snapshots() if snap.confirmed}
        transitions = engine.tick(now, wall)
        obs.record(transitions)
        obs.check_timing(transitions)
        if was_blind:
            assert transitions == []
        if obs.warmup_end is not None and now < obs.warmup_end:
            assert engine.warming_up
            # Only devices heard since start are judged by their deadlines (R14).
            assert all(t.new is State.OFFLINE or t.device_id in confirmed for t in transitions)
            assert all(t.reason not in TIMED or t.device_id in confirmed for t in transitions)
        return
    if kind in ("beat", "online", "offline"):
        dev_id = op[2]
        before = engine.snapshot(dev_id)
        if kind == "beat":
            _, _, _, sess, seq, interval, retained = op
            hb = Heartbeat(seq=seq, session=sess, interval=interval)
            result = engine.heartbeat(dev_id, hb, now, wall, retained=retained)
        elif kind == "online":
            _, _, _, sess, retained = op
            presence = Presence(PresenceState.ONLINE, sess)
            result = engine.presence(dev_id, presence, now, wall, retained=retained)
        else:
            _, _, _, sess, reason, retained = op
            presence = Presence(PresenceState.OFFLINE, sess, reason)
            result = engine.presence(dev_id, presence, now, wall, retained=retained)
        obs.record(result.transitions)
        after = engine.snapshot(dev_id)
        if result.outcome in (Outcome.DUPLICATE, Outcome.STALE_SESSION):
            _unchanged(before, after, result)
        if result.outcome is Outcome.RETAINED_CLAIM:
            assert all(t.reason is Reason.FIRST_SEEN for t in result.transitions)
            if before is not None:
                assert after is not None
                assert (after.state, after.last_seen_wall) == (before.state, before.last_seen_wall)
        if kind == "beat" and result.outcome in (Outcome.ACCEPTED, Outcome.RECONNECTED):
            assert not retained
            obs.last_beat[dev_id] = now
            assert after is not None
            assert after.state in (State.ONLINE, State.MAINTENANCE)
        return
    if kind == "maintenance":
        _, _, dev_id, on = op
        if dev_id in engine:
            obs.record(engine.set_maintenance(dev_id, on, now, wall))
            snap = engine.snapshot(dev_id)
            assert snap is not None
            assert (snap.state is State.MAINTENANCE) == on
    elif kind == "override":
        _, _, dev_id, seconds = op
        if dev_id in engine:
            engine.set_interval_override(dev_id, seconds)
    elif kind == "classes":
        engine.set_classes(CLASS_SETS[op[2]])
    elif kind == "forget":
        dev_id = op[2]
        assert engine.forget(dev_id) == (dev_id in obs.states)
        obs.states.pop(dev_id, None)
        obs.stamps.pop(dev_id, None)
        obs.last_beat.pop(dev_id, None)
    elif kind == "suspend":
        engine.suspend(now)
    elif kind == "resume":
        engine.resume(now)
    elif kind == "warmup":
        obs.warmup_end = engine.start_warmup(now, op[2])


@settings(max_examples=600, deadline=None)
@given(st.lists(operation, max_size=60))
def test_random_event_sequences_keep_every_invariant(ops: list[tuple[Any, ...]]) -> None:
    obs = Observer(LivenessEngine(classes=CLASS_SETS[0]))
    for op in ops:
        apply(obs, op)
        obs.check()
    # Whatever happened, time heals: after resume and a long wait every tracked device
    # not in maintenance has reached a verdict its evidence supports.
    obs.engine.resume(obs.now)
    for _ in range(3):
        obs.now += 10_000.0
        transitions = obs.engine.tick(obs.now, obs.wall)
        obs.record(transitions)
    obs.check()
    assert set(obs.states.values()) <= {State.LOST, State.MAINTENANCE}


@settings(max_examples=300, deadline=None)
@given(
    interval=st.sampled_from([1.0, 5.0, 30.0]),
    grace=st.sampled_from([0.5, 2.0, 10.0]),
    missed_limit=st.integers(1, 4),
    gaps=st.lists(st.floats(0.0, 0.999), min_size=1, max_size=80),
    ticks=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=80),
    noise=st.lists(st.tuples(st.sampled_from(["x", "y"]), st.integers(0, 3)), max_size=40),
)
def test_a_device_that_beats_every_interval_never_leaves_online(
    interval: float,
    grace: float,
    missed_limit: int,
    gaps: list[float],
    ticks: list[float],
    noise: list[tuple[str, int]],
) -> None:
    engine = LivenessEngine(
        classes={"default": Policy(grace=grace, missed_limit=missed_limit, lost_after=60.0)}
    )
    now = 0.0
    seq = 0
    beat_times: list[float] = []
    for gap in gaps:
        # Each gap is shorter than interval + grace.
        now += gap * (interval + grace)
        beat_times.append(now)
    # Ticks at random points across the whole run, interleaved with the beats.
    end = beat_times[-1]
    tick_times = sorted(fraction * end for fraction in ticks)
    events = sorted([(t, 0, "beat") for t in beat_times] + [(t, 1, "tick") for t in tick_times])
    for index, (at, _, kind) in enumerate(events):
        if kind == "beat":
            seq += 1
            result = engine.heartbeat(
                "steady", Heartbeat(seq=seq, session="s", interval=interval), at, T0 + at
            )
            assert all(t.reason is Reason.FIRST_SEEN for t in result.transitions)
            other, other_seq = noise[index % len(noise)] if noise else ("x", 0)
            engine.heartbeat(
                other, Heartbeat(seq=other_seq, session="n", interval=interval), at, T0 + at
            )
        else:
            transitions = engine.tick(at, T0 + at)
            assert all(t.device_id != "steady" for t in transitions)
        snap = engine.snapshot("steady")
        assert snap is None or snap.state is State.ONLINE

"""Counts, dirty tracking, snapshots, forget, policy validation, the transition table."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

import monitor.liveness
from device_client.protocol import Heartbeat
from monitor.liveness import (
    ALLOWED_TRANSITIONS,
    DEFAULT_CLASS,
    IllegalTransition,
    InvalidPolicy,
    LivenessEngine,
    LivenessError,
    Policy,
    Reason,
    State,
    UnknownDevice,
    resolve_interval,
)
from monitor.liveness.states import check_transition

T0 = 1_700_000_000.0


def beat(engine: LivenessEngine, device: str, now: float, seq: int) -> None:
    engine.heartbeat(device, Heartbeat(seq=seq, session="s1", interval=30.0), now, T0 + now)


def test_counts_follow_every_transition() -> None:
    engine = LivenessEngine()
    for n in range(5):
        beat(engine, f"d{n}", float(n * 10), 1)
    assert engine.counts()[State.ONLINE] == 5
    engine.tick(55.0, T0 + 55)  # d0 and d1 late
    engine.set_maintenance("d4", True, 56.0, T0 + 56)
    counts = engine.counts()
    assert counts[State.ONLINE] == 2
    assert counts[State.LATE] == 2
    assert counts[State.MAINTENANCE] == 1
    assert sum(counts.values()) == len(engine) == 5
    engine.forget("d0")
    assert engine.counts()[State.LATE] == 1
    # counts() is a copy: mutating it changes nothing inside.
    engine.counts()[State.LATE] = 99
    assert engine.counts()[State.LATE] == 1


def test_drain_dirty_gives_one_snapshot_per_changed_device() -> None:
    engine = LivenessEngine()
    for seq in range(1, 50):
        beat(engine, "a", float(seq), seq)
    beat(engine, "b", 1.0, 1)
    drained = engine.drain_dirty()
    assert sorted(s.device_id for s in drained) == ["a", "b"]
    assert next(s for s in drained if s.device_id == "a").last_seq == 49
    assert engine.drain_dirty() == []


def test_ignored_events_do_not_dirty() -> None:
    engine = LivenessEngine()
    beat(engine, "a", 0.0, 5)
    engine.drain_dirty()
    beat(engine, "a", 1.0, 5)  # duplicate
    engine.heartbeat("a", Heartbeat(seq=9, session="s1", interval=30.0), 2.0, T0, retained=True)
    assert engine.drain_dirty() == []


def test_transitions_ops_and_new_sessions_dirty() -> None:
    engine = LivenessEngine()
    beat(engine, "a", 0.0, 1)
    beat(engine, "b", 0.0, 1)
    beat(engine, "c", 30.0, 1)
    engine.drain_dirty()
    engine.tick(40.0, T0 + 40)
    engine.set_interval_override("b", 60.0)
    engine.set_class("c", "pumps")
    assert sorted(s.device_id for s in engine.drain_dirty()) == ["a", "b", "c"]


def test_forget_drops_everything_about_a_device() -> None:
    engine = LivenessEngine()
    beat(engine, "a", 0.0, 1)
    assert engine.forget("a")
    assert not engine.forget("a")
    assert "a" not in engine
    assert engine.snapshot("a") is None
    assert engine.drain_dirty() == []
    assert engine.tick(1000.0, T0 + 1000) == []
    assert sum(engine.counts().values()) == 0
    # Seen again: a new first record.
    engine.heartbeat("a", Heartbeat(seq=1, session="s1", interval=30.0), 2000.0, T0 + 2000)
    snap = engine.snapshot("a")
    assert snap is not None
    assert snap.reason is Reason.FIRST_SEEN


def test_snapshots_cover_every_device() -> None:
    engine = LivenessEngine()
    for n in range(10):
        beat(engine, f"d{n}", 0.0, 1)
    assert sorted(s.device_id for s in engine.snapshots()) == [f"d{n}" for n in range(10)]


def test_heartbeats_moving_deadlines_later_grow_no_heap() -> None:
    engine = LivenessEngine()
    for seq in range(1, 10_001):
        beat(engine, "a", seq * 0.01, seq)
    assert engine.heap_size() == 1


def test_errors_share_one_base_class() -> None:
    assert issubclass(UnknownDevice, LivenessError)
    assert issubclass(UnknownDevice, KeyError)
    assert issubclass(InvalidPolicy, LivenessError)
    assert issubclass(InvalidPolicy, ValueError)
    assert issubclass(IllegalTransition, LivenessError)
    assert str(UnknownDevice("x")) == "unknown device 'x'"


# ----------------------------------------------------------------------------- policy


def test_policy_defaults_are_documented_values() -> None:
    policy = Policy()
    assert (policy.interval, policy.grace, policy.missed_limit, policy.lost_after) == (
        None,
        10.0,
        3,
        86_400.0,
    )
    engine = LivenessEngine()
    assert (engine.default_interval, engine.will_hold) == (30.0, 2.0)
    assert set(engine.classes) == {DEFAULT_CLASS}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval": 0.0},
        {"interval": 90_000.0},
        {"interval": math.nan},
        {"grace": -1.0},
        {"grace": math.inf},
        {"missed_limit": 0},
        {"missed_limit": 2.5},
        {"missed_limit": True},
        {"lost_after": 0.0},
        {"lost_after": math.inf},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidPolicy) as info:
        Policy(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == next(iter(kwargs))


def test_bad_engine_settings_are_refused() -> None:
    with pytest.raises(InvalidPolicy):
        LivenessEngine(default_interval=0.0)
    with pytest.raises(InvalidPolicy):
        LivenessEngine(will_hold=-1.0)
    with pytest.raises(InvalidPolicy):
        LivenessEngine(classes={"": Policy()})
    engine = LivenessEngine()
    beat(engine, "a", 0.0, 1)
    with pytest.raises(InvalidPolicy):
        engine.set_interval_override("a", 0.01)
    with pytest.raises(InvalidPolicy):
        engine.set_class("a", "")


def test_resolve_interval_order() -> None:
    cls = Policy(interval=10.0)
    free = Policy()
    assert resolve_interval(override=5.0, policy=cls, announced=20.0) == 5.0
    assert resolve_interval(override=None, policy=cls, announced=20.0) == 10.0
    assert resolve_interval(override=None, policy=free, announced=20.0) == 20.0
    assert resolve_interval(override=None, policy=free, announced=None) == 30.0
    assert resolve_interval(override=None, policy=free, announced=None, default=7.0) == 7.0


# ------------------------------------------------------------------ transition table


def test_every_table_entry_has_reasons_and_no_self_transitions() -> None:
    for (old, new), reasons in ALLOWED_TRANSITIONS.items():
        assert reasons
        assert old is not new


def test_first_records_are_always_first_seen() -> None:
    for (old, _), reasons in ALLOWED_TRANSITIONS.items():
        if old is None:
            assert reasons == {Reason.FIRST_SEEN}


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (State.LOST, State.LATE, Reason.MISSED_HEARTBEATS),
        (State.OFFLINE, State.STALE, Reason.STOPPED_BEATING),
        (State.MAINTENANCE, State.LATE, Reason.MISSED_HEARTBEATS),
        (State.ONLINE, State.LATE, Reason.HEARTBEAT),
        (None, State.LOST, Reason.FIRST_SEEN),
    ],
)
def test_illegal_transitions_are_refused(old: State | None, new: State, reason: Reason) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition("d1", old, new, reason)
    assert (info.value.old, info.value.new, info.value.reason) == (old, new, reason)


def test_deadlines_never_move_a_device_up() -> None:
    rank = {State.ONLINE: 0, State.UNKNOWN: 0, State.LATE: 1, State.STALE: 2, State.OFFLINE: 2}
    timed = {Reason.MISSED_HEARTBEATS, Reason.STOPPED_BEATING, Reason.GONE}
    for (old, new), reasons in ALLOWED_TRANSITIONS.items():
        if reasons & timed:
            assert old is not None
            assert rank[old] < rank.get(new, 3)


def test_the_engine_imports_nothing_impure() -> None:
    """No asyncio, database, MQTT or clock module in the liveness package itself."""
    pure_roots = {
        "__future__",
        "collections",
        "dataclasses",
        "enum",
        "heapq",
        "math",
        # Struct types only (EventResult): no I/O, no clock.
        "msgspec",
        "sys",
        "types",
        "typing",
        "device_client",
        "monitor",
    }
    package = Path(monitor.liveness.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in pure_roots, (path.name, name)
                if name.startswith("device_client"):
                    assert name == "device_client.protocol", (path.name, name)
                if name.startswith("monitor"):
                    assert name.startswith("monitor.liveness"), (path.name, name)

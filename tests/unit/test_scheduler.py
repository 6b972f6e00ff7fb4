"""The deadline scheduler: lazy deletion, re-queueing, compaction (pure, no engine)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.liveness.scheduler import DeadlineScheduler

INF = math.inf


class Item:
    __slots__ = ("deadline", "queued")

    def __init__(self) -> None:
        self.deadline = INF
        self.queued = INF


def make() -> tuple[dict[str, Item], DeadlineScheduler[Item]]:
    items: dict[str, Item] = {}
    return items, DeadlineScheduler(items.get)


def add(items: dict[str, Item], sched: DeadlineScheduler[Item], key: str, when: float) -> Item:
    item = items.setdefault(key, Item())
    sched.set(key, item, when)
    return item


def keys(due: list[tuple[str, Item]]) -> list[str]:
    return [key for key, _ in due]


def test_fires_at_its_deadline_and_not_before() -> None:
    items, sched = make()
    add(items, sched, "a", 10.0)
    assert sched.pop_due(9.999) == []
    assert keys(sched.pop_due(10.0)) == ["a"]
    # Popped items are unscheduled until set again.
    assert sched.pop_due(1e9) == []


def test_due_items_come_out_in_deadline_order() -> None:
    items, sched = make()
    for key, when in [("c", 3.0), ("a", 1.0), ("b", 2.0)]:
        add(items, sched, key, when)
    assert keys(sched.pop_due(5.0)) == ["a", "b", "c"]


def test_moving_a_deadline_later_pushes_no_entry() -> None:
    items, sched = make()
    item = add(items, sched, "a", 10.0)
    for step in range(1000):
        sched.set("a", item, 10.0 + step)
    assert len(sched) == 1
    assert sched.garbage == 0


def test_an_entry_whose_deadline_moved_later_is_requeued_not_fired() -> None:
    items, sched = make()
    item = add(items, sched, "a", 10.0)
    sched.set("a", item, 25.0)
    assert sched.pop_due(10.0) == []
    assert item.queued == 25.0
    assert len(sched) == 1
    assert sched.pop_due(24.9) == []
    assert keys(sched.pop_due(25.0)) == ["a"]


def test_moving_a_deadline_earlier_pushes_an_entry_and_the_old_one_is_garbage() -> None:
    items, sched = make()
    item = add(items, sched, "a", 10.0)
    sched.set("a", item, 5.0)
    assert len(sched) == 2
    assert sched.garbage == 1
    assert keys(sched.pop_due(5.0)) == ["a"]
    # The old entry at 10 pops as garbage and fires nothing.
    assert sched.pop_due(10.0) == []
    assert sched.garbage == 0
    assert len(sched) == 0


def test_infinite_deadline_clears_without_firing() -> None:
    items, sched = make()
    item = add(items, sched, "a", 10.0)
    sched.set("a", item, INF)
    assert sched.pop_due(1e12) == []
    assert len(sched) == 0
    sched.set("a", item, 20.0)
    assert keys(sched.pop_due(20.0)) == ["a"]


def test_forgotten_items_never_fire() -> None:
    items, sched = make()
    item = add(items, sched, "a", 10.0)
    sched.forget(item)
    del items["a"]
    assert sched.pop_due(100.0) == []


def test_a_key_forgotten_and_added_again_fires_only_its_new_deadline() -> None:
    items, sched = make()
    old = add(items, sched, "a", 10.0)
    sched.forget(old)
    del items["a"]
    add(items, sched, "a", 30.0)
    assert sched.pop_due(10.0) == []
    assert keys(sched.pop_due(30.0)) == ["a"]


def test_pop_due_touches_only_due_entries() -> None:
    items, sched = make()
    for n in range(10_000):
        add(items, sched, f"d{n}", 1000.0 + n)
    add(items, sched, "early", 1.0)
    assert keys(sched.pop_due(2.0)) == ["early"]
    assert len(sched) == 10_000
    assert sched.next_due() == 1000.0


def test_compaction_drops_garbage_once_it_dominates() -> None:
    items, sched = make()
    for n in range(3000):
        add(items, sched, f"d{n}", 1000.0)
    # Every deadline moves earlier: 3000 garbage entries against 3000 live ones would
    # double the heap; compaction keeps it near the live count.
    for n in range(3000):
        sched.set(f"d{n}", items[f"d{n}"], 500.0)
    assert len(sched) < 3000 + 1100
    due = sched.pop_due(500.0)
    assert len(due) == 3000
    assert sched.pop_due(1000.0) == []


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, str, float]]:
    ops = []
    for _ in range(draw(st.integers(1, 80))):
        kind = draw(st.sampled_from(["set", "set", "set", "clear", "forget", "pop"]))
        key = draw(st.sampled_from(["a", "b", "c", "d"]))
        value = draw(st.floats(0, 50, allow_nan=False).map(lambda x: round(x, 1)))
        ops.append((kind, key, value))
    return ops


@settings(max_examples=300, deadline=None)
@given(operations())
def test_pop_due_returns_exactly_the_items_due(ops: list[tuple[str, str, float]]) -> None:
    """Never an item whose deadline moved later; never misses one that is due."""
    items, sched = make()
    model: dict[str, float] = {}
    now = 0.0
    for kind, key, value in ops:
        if kind == "set":
            when = now + value
            add(items, sched, key, when)
            model[key] = when
        elif kind == "clear" and key in items:
            sched.set(key, items[key], INF)
            model.pop(key, None)
        elif kind == "forget" and key in items:
            sched.forget(items.pop(key))
            model.pop(key, None)
        elif kind == "pop":
            now += value
            due = sched.pop_due(now)
            expected = {k for k, when in model.items() if when <= now}
            assert sorted(keys(due)) == sorted(expected)
            for k, item in due:
                assert item.deadline <= now
                del model[k]
        assert len(sched) <= 2 * len(items) + 2 * len(ops)
    due = sched.pop_due(INF)
    assert sorted(keys(due)) == sorted(model)


def test_pop_due_with_a_limit_takes_the_earliest_and_leaves_the_rest() -> None:
    items, sched = make()
    for n, when in enumerate([5.0, 1.0, 4.0, 2.0, 3.0, 9.0]):
        add(items, sched, f"k{n}", when)
    assert [key for key, _ in sched.pop_due(6.0, limit=2)] == ["k1", "k3"]
    assert sched.next_due() == 3.0
    assert [key for key, _ in sched.pop_due(6.0, limit=10)] == ["k4", "k2", "k0"]
    assert [key for key, _ in sched.pop_due(6.0, limit=10)] == []
    assert sched.next_due() == 9.0

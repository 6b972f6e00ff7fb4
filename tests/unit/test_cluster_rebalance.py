"""Rebalancing: an even spread over live replicas with the fewest partitions moved."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.cluster.rebalance import plan_for, target_assignment


def owners_of(assignment: Mapping[str, frozenset[int]]) -> dict[int, str | None]:
    return {p: name for name, chosen in assignment.items() for p in chosen}


def test_first_replica_takes_everything() -> None:
    assert target_assignment(8, ["a"], {}) == {"a": frozenset(range(8))}


def test_spread_is_even_and_complete() -> None:
    target = target_assignment(64, ["a", "b", "c"], {})
    assert sorted(len(chosen) for chosen in target.values()) == [21, 21, 22]
    assert frozenset().union(*target.values()) == frozenset(range(64))


def test_a_joining_replica_takes_only_its_share() -> None:
    before = target_assignment(64, ["a", "b", "c"], {})
    after = target_assignment(64, ["a", "b", "c", "d"], owners_of(before))
    assert sorted(len(chosen) for chosen in after.values()) == [16, 16, 16, 16]
    for name in ("a", "b", "c"):
        assert after[name] <= before[name]  # the old replicas only give
    assert len(after["d"]) == 16  # exactly what moved


def test_a_dead_replicas_share_goes_to_the_survivors_and_nothing_else_moves() -> None:
    before = target_assignment(64, ["a", "b", "c"], {})
    after = target_assignment(64, ["a", "c"], owners_of(before))  # b died
    assert after["a"] >= before["a"]
    assert after["c"] >= before["c"]
    assert after["a"] | after["c"] == frozenset(range(64))
    assert sorted(len(chosen) for chosen in after.values()) == [32, 32]


def test_a_balanced_cluster_stays_as_it_is() -> None:
    owners = {p: ("x" if p % 2 else "y") for p in range(9)}  # y holds 5, x holds 4
    target = target_assignment(9, ["x", "y"], owners)
    assert owners_of(target) == owners


def test_plan_acquires_only_free_partitions_and_hands_off_the_surplus() -> None:
    owners: dict[int, str | None] = dict.fromkeys(range(8), "a")
    joining = plan_for("b", 8, ["a"], owners)
    assert joining.acquire == frozenset()  # all still held by a: wait for its handoff
    giving = plan_for("a", 8, ["a", "b"], owners)
    assert len(giving.release) == 4
    assert giving.acquire == frozenset()
    owners.update(dict.fromkeys(giving.release))  # a flushed and released
    assert plan_for("b", 8, ["a", "b"], owners).acquire == giving.release


def test_plan_takes_a_dead_owners_partitions() -> None:
    owners: dict[int, str | None] = {0: "a", 1: "gone", 2: "gone", 3: "a"}
    assert plan_for("a", 4, ["a"], owners).acquire == frozenset({1, 2})


@given(
    partitions=st.integers(1, 80),
    members=st.sets(st.sampled_from("abcdefg"), min_size=1),
    seed=st.dictionaries(st.integers(0, 79), st.sampled_from("abcdefgz")),
)
def test_properties(partitions: int, members: set[str], seed: dict[int, str]) -> None:
    owners: dict[int, str | None] = {p: o for p, o in seed.items() if p < partitions}
    target = target_assignment(partitions, members, owners)
    sizes = [len(chosen) for chosen in target.values()]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == partitions
    assert frozenset().union(*target.values()) == frozenset(range(partitions))
    # Minimal movement: a live owner loses a partition only when it holds more than
    # its share, and then only the surplus.
    for name in members:
        had = {p for p, o in owners.items() if o == name}
        assert len(had - target[name]) == max(0, len(had) - len(target[name]))
    # Stable: applying the target again changes nothing.
    assert target_assignment(partitions, members, owners_of(target)) == target


@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 7, 64, 100])
def test_every_replica_count_covers_all_partitions(replicas: int) -> None:
    names = [f"r{n:03d}" for n in range(replicas)]
    target = target_assignment(64, names, {})
    assert frozenset().union(*target.values()) == frozenset(range(64))

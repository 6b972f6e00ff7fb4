"""Which partitions each live replica should hold: an even spread, moving as few as possible.

Pure: every replica computes the same answer from the same two facts it reads from the
database, the live members and the current lease owners, so no replica has to tell
another what to do. Rules:

* Each of ``R`` members holds ``P // R`` partitions, and ``P % R`` of them one more.
  The ones with one more are those already holding the most (ties: by name), so a
  balanced cluster stays as it is.
* A member keeps the partitions it holds, lowest first, up to its share; a partition
  held by no live member, or beyond its holder's share, goes to a member below its
  share (members by name, partitions lowest first).
* Nothing else moves: with a cluster already balanced, adding one replica moves only
  the partitions it takes, and losing one moves only the partitions it held.

The plan is carried out by handoff (``docs/cluster.md``): a replica holding more than
its target flushes and releases the surplus; a replica below target acquires a
partition once it is free, released or expired.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    """What one replica should do now: partitions to acquire and to hand off."""

    acquire: frozenset[int]
    release: frozenset[int]


def target_assignment(
    partitions: int, members: Collection[str], owners: Mapping[int, str | None]
) -> dict[str, frozenset[int]]:
    """The partitions each member should hold. ``owners`` maps partition -> live owner
    (``None`` or absent for a free partition; owners that are not members count as none).
    """
    names = sorted(set(members))
    if not names:
        return {}
    held: dict[str, list[int]] = {name: [] for name in names}
    for partition in range(partitions):
        owner = owners.get(partition)
        if owner in held:
            held[owner].append(partition)
    base, extra = divmod(partitions, len(names))
    by_holding = sorted(names, key=lambda name: (-len(held[name]), name))
    quota = {name: base + (1 if rank < extra else 0) for rank, name in enumerate(by_holding)}
    target: dict[str, list[int]] = {name: held[name][: quota[name]] for name in names}
    kept = {partition for chosen in target.values() for partition in chosen}
    free = iter(sorted(set(range(partitions)) - kept))
    for name in names:
        while len(target[name]) < quota[name]:
            target[name].append(next(free))
    return {name: frozenset(chosen) for name, chosen in target.items()}


def plan_for(
    me: str, partitions: int, members: Collection[str], owners: Mapping[int, str | None]
) -> Plan:
    """What ``me`` should acquire and release to move toward :func:`target_assignment`.

    Only partitions nobody live holds are worth acquiring now; one still held by
    another member comes free when that member hands it off.
    """
    everyone = {*members, me}
    target = target_assignment(partitions, everyone, owners).get(me, frozenset())
    mine = frozenset(p for p, owner in owners.items() if owner == me)
    takeable = frozenset(
        p for p in target - mine if owners.get(p) is None or owners.get(p) not in everyone
    )
    return Plan(acquire=takeable, release=mine - target)

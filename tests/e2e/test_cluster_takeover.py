"""Two monitor replicas on one Mosquitto and one PostgreSQL: the wiring of cluster mode.

Both hear every device (hot standby); each acts for the partitions it holds. SIGKILL one
replica together with one of its devices: the survivor takes every partition over once
the dead one's leases expire and reports that device offline exactly once, as of its
will, with nothing else changing. SIGTERM hands everything over at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.cluster import leases
from monitor.cluster.partitions import ids_in
from tests.harness.monitor import (
    MonitorProcess,
    Spawned,
    StatusWatch,
    _query,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.mosquitto import TestBroker

PARTITIONS = 8
# Long enough that a loaded machine's stalls do not make leases change hands.
LEASES = {"lease_ttl": 8.0, "lease_renew_every": 1.0, "lease_margin": 2.0}
FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 1,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "summary_interval": 1,
}
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def owners(database_url: str) -> dict[int, str | None]:
    """Each partition's lease owner's replica name (the owner minus its run suffix)."""
    held = _query(database_url, leases.lease_owners)
    return {p: None if o is None else o.split(":")[0] for p, o in held.items()}


@pytest.fixture
def replicas(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> Iterator[dict[str, MonitorProcess]]:
    broker.add_monitor_users(["monitor-a", "monitor-b"])
    made = {
        name: MonitorProcess(
            broker,
            database_url,
            tmp_path / f"replica-{name}.log",
            **FAST,
            **LEASES,
            cluster="true",
            partitions=PARTITIONS,
            replica=name,
            mqtt_url=broker.url(f"monitor-{name}"),
        )
        for name in ("a", "b")
    }
    try:
        for replica in made.values():
            replica.start(probe=watch)
        yield made
    finally:
        for replica in made.values():
            replica.stop()


def split_evenly(database_url: str) -> bool:
    held = owners(database_url)
    return sorted(held.values(), key=str) == ["a"] * 4 + ["b"] * 4


@POSTGRES_ONLY
def test_a_killed_replicas_partitions_are_taken_over_and_its_dead_device_reported_once(
    broker: TestBroker,
    database_url: str,
    replicas: dict[str, MonitorProcess],
    spawned: Spawned,
    watch: StatusWatch,
) -> None:
    ttl = LEASES["lease_ttl"]
    wait_until(lambda: split_evenly(database_url), 10 * ttl, what="an even split")
    held = owners(database_url)
    of_a = {p for p, o in held.items() if o == "a"}
    of_b = set(range(PARTITIONS)) - of_a
    fleet = ids_in(of_a, 3, "cl-a", of=PARTITIONS) + ids_in(of_b, 3, "cl-b", of=PARTITIONS)
    for device_id in fleet:
        broker.add_device(device_id)
    procs = {device_id: spawned.device(device_id) for device_id in fleet}
    for device_id in fleet:
        watch.wait_state(device_id, "online")
    wait_until(
        lambda: all(
            (d := read_devices(database_url).get(i)) is not None and d.state == "online"
            for i in fleet
        ),
        20,
        what="the fleet online in the database",
    )
    victim = fleet[0]  # one of a's partitions

    # The replica and one of its devices die together: nobody acts for the device's
    # partition until a's leases expire.
    replicas["a"].kill()
    procs[victim].kill()
    killed = time.monotonic()
    wait_until(
        lambda: set(owners(database_url).values()) == {"b"},
        ttl + 10 * LEASES["lease_renew_every"] + 10,
        what="b owning every partition",
    )
    watch.wait_state(victim, "offline", reason="connection-lost", after=killed)
    wait_until(
        lambda: read_devices(database_url)[victim].state == "offline",
        10,
        what="the victim offline in the database",
    )
    # A while longer: a second report, or a false one, would have time to land.
    time.sleep(2 * ttl)
    moves = [
        (t.device_id, t.old_state, t.new_state, t.reason) for t in read_transitions(database_url)
    ]
    assert sorted(moves, key=lambda m: (m[0], m[1] or "")) == sorted(
        [(d, None, "online", "first-seen") for d in fleet]
        + [(victim, "online", "offline", "connection-lost")],
        key=lambda m: (m[0], m[1] or ""),
    )
    assert all(read_devices(database_url)[d].state == "online" for d in fleet[1:])
    assert "acting for partitions" in replicas["b"].log_path.read_text(errors="replace")


async def _history(session: AsyncSession) -> list[tuple[int, str, str, str | None]]:
    rows = await session.execute(
        text("SELECT partition, owner, event, previous_owner FROM lease_history ORDER BY at, epoch")
    )
    return [(r.partition, r.owner.split(":")[0], r.event, r.previous_owner) for r in rows]


@POSTGRES_ONLY
def test_sigterm_hands_every_partition_over_at_once(
    database_url: str, replicas: dict[str, MonitorProcess]
) -> None:
    ttl = LEASES["lease_ttl"]
    wait_until(lambda: split_evenly(database_url), 10 * ttl, what="an even split")
    of_a = {p for p, o in owners(database_url).items() if o == "a"}
    assert replicas["a"].terminate() == 0
    wait_until(
        lambda: set(owners(database_url).values()) == {"b"},
        10 * ttl,
        what="b owning every partition",
    )
    history = _query(database_url, _history)
    released = {p for p, owner, event, _ in history if owner == "a" and event == "release"}
    assert of_a <= released
    # Released, not expired: b took each one free, with no previous owner to outwait.
    last_acquire = {p: prev for p, owner, event, prev in history if event == "acquire"}
    assert all(last_acquire[p] is None for p in of_a), last_acquire
    log = replicas["a"].log_path.read_text(errors="replace")
    assert "leases released" in log

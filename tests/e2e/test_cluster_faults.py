"""Cluster mode under faults: real replicas, one Mosquitto, one PostgreSQL of the test's own.

Three ``clawbeat monitor`` processes share a simulated fleet (docs/operations.md,
"Cluster"); the test kills, freezes, restarts and adds replicas, and restarts the
database, then checks what ops would see: the lease rows and the lease history, the
transitions table, the status topics and who published them, alert notifications.

Lease timing is short (``TIMING``) and every wait and margin is derived from it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pytest

from monitor.store import migrate
from tests.harness.alert_sinks import Hook, WebhookSink
from tests.harness.monitor import Spawned, wait_until
from tests.harness.monitor_cluster import (
    ClusterWatch,
    LeaseEvent,
    LeaseTiming,
    MonitorCluster,
    PublishLog,
    database_now,
    device_states,
    overlapping_owners,
    publish_log,
    read_lease_history,
    status_device,
    transitions_since,
)
from tests.harness.mosquitto import TestBroker, check_mosquitto_installed
from tests.harness.postgres import RestartableServer, run_coroutine

_T = TypeVar("_T")
# Three monitors, a fleet and PostgreSQL on a shared machine: minutes, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TIMING = LeaseTiming(ttl=3.0, renew_every=0.5, margin=1.0)
PARTITIONS = 16
REPLICAS = ["a", "b", "c"]
INTERVAL = 1.0  # every device's heartbeat
PASSWORD = "fleet-password"
STORM_WINDOW = 1.0
ALERT_POLL = 0.2
SETTINGS: dict[str, object] = {
    # A loaded machine must not make a beating device late: a grace of several intervals.
    "grace": 5,
    "default_interval": INTERVAL,
    "warmup": 2,
    "will_hold": 0.5,
    "summary_interval": 1,
    "storm_window": STORM_WINDOW,
    "alert_poll_interval": ALERT_POLL,
    "alert_retry_base": 0.3,
    "alert_retry_cap": 1,
    "repeat_every": 0,
    "escalate_after": 0,
}
# Long enough for anything still on its way to land: a few lease steps (a handoff, a
# rejoin), the storm window and alert polls, the write-behind window, plus a margin
# for a loaded machine.
QUIET_FOR = 4 * TIMING.renew_every + STORM_WINDOW + 5 * ALERT_POLL + 2.0
# Generous bounds for waiting (never asserted as speed).
SETTLE = 60.0


@pytest.fixture
def database(pg_cluster: RestartableServer) -> str:
    url = pg_cluster.create_database("clawbeat_cluster")
    run_coroutine(lambda: migrate.upgrade(url))
    return url


def _broker(tmp_path: Path, *, log_publishes: bool) -> TestBroker:
    missing = check_mosquitto_installed()
    if missing:
        pytest.fail(missing, pytrace=False)
    broker = TestBroker(tmp_path / "broker")
    if log_publishes:
        broker.log_publishes()
    broker.start()
    return broker


@pytest.fixture
def cluster_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TestBroker]:
    """The test's Mosquitto; with the ``publishes`` marker, logging who publishes what."""
    logged = request.node.get_closest_marker("publishes") is not None
    broker = _broker(tmp_path, log_publishes=logged)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def watch(cluster_broker: TestBroker) -> Iterator[ClusterWatch]:
    probe = ClusterWatch(cluster_broker)
    yield probe
    probe.close()


@pytest.fixture
def spawned(cluster_broker: TestBroker, tmp_path: Path) -> Iterator[Spawned]:
    procs = Spawned(cluster_broker, tmp_path)
    yield procs
    procs.close()


@pytest.fixture
def hooks() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def cluster(cluster_broker: TestBroker, database: str, tmp_path: Path) -> Iterator[MonitorCluster]:
    replicas = MonitorCluster(
        cluster_broker, database, tmp_path, partitions=PARTITIONS, timing=TIMING, **SETTINGS
    )
    yield replicas
    replicas.close()


class Fleet:
    """A simulated fleet plus single devices to kill and start at chosen moments."""

    def __init__(self, broker: TestBroker, spawned: Spawned, *, size: int, spares: int) -> None:
        self.spawned = spawned
        self.ids = [f"fleet-{i:05d}" for i in range(size)]
        self.spare_ids = [f"spare-{i:03d}" for i in range(spares)]
        broker.add_devices([*self.ids, *self.spare_ids], PASSWORD)
        spawned.simulate(prefix="fleet-", count=size, password=PASSWORD, interval=INTERVAL)
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start_spare(self, cluster: MonitorCluster, partitions: set[int]) -> str:
        """Start an unstarted spare device whose partition is one of ``partitions``."""
        device = next(
            d
            for d in self.spare_ids
            if d not in self.started and cluster.partition_of(d) in partitions
        )
        self.started[device] = self.spawned.device(device, interval=INTERVAL)
        return device

    def kill(self, device: str) -> None:
        proc = self.started[device]
        proc.kill()
        proc.wait(10)

    def all_ids(self) -> list[str]:
        return [*self.ids, *self.started]


def _wait(condition: Callable[[], _T | None], what: str, timeout: float = SETTLE) -> _T:
    return wait_until(condition, timeout, every=TIMING.renew_every / 2, what=what)


def start_cluster(cluster: MonitorCluster, watch: ClusterWatch, names: list[str]) -> None:
    for name in names:
        cluster.start(name, watch)
    cluster.wait_balanced(names, SETTLE)


def wait_online(cluster: MonitorCluster, devices: list[str]) -> None:
    def all_online() -> bool:
        states = device_states(cluster.database_url)
        return all(states.get(d) == "online" for d in devices)

    _wait(all_online, f"{len(devices)} devices online in the database", timeout=60)


def wait_transition(cluster: MonitorCluster, since: datetime, device: str, state: str) -> None:
    _wait(
        lambda: any(
            t[0] == device and t[2] == state for t in transitions_since(cluster.database_url, since)
        ),
        f"{device} -> {state} stored",
    )


def titled(device: str) -> Callable[[Hook], bool]:
    return lambda hook: device in hook.title


def describe(event: LeaseEvent) -> str:
    until = event.previous_expires_at
    taken = f" from {event.previous_owner}" + (f" (ran until {until:%T.%f})" if until else "")
    return (
        f"partition {event.partition} epoch {event.epoch} by {event.owner} at {event.at:%T.%f}"
        + (taken if event.previous_owner else " (free)")
    )


def first_acquisitions_after(
    history: list[LeaseEvent], partitions: set[int], after: datetime
) -> dict[int, LeaseEvent]:
    found: dict[int, LeaseEvent] = {}
    for event in history:
        if event.event == "acquire" and event.partition in partitions and event.at > after:
            found.setdefault(event.partition, event)
    return found


def test_a_killed_replica_is_replaced_within_a_lease_and_a_device_dying_meanwhile_is_reported_once(
    cluster_broker: TestBroker,
    cluster: MonitorCluster,
    watch: ClusterWatch,
    spawned: Spawned,
    hooks: WebhookSink,
) -> None:
    fleet = Fleet(cluster_broker, spawned, size=300, spares=40)
    first = cluster.add("a")
    first.cli("channels", "add", "ops-hook", hooks.url("/ops"))
    start_cluster(cluster, watch, REPLICAS)
    victim = fleet.start_spare(cluster, set(range(PARTITIONS)))
    wait_online(cluster, fleet.all_ids())
    # Past warm-up everywhere: from here on a device going down is alerted.
    since = database_now(cluster.database_url)

    dead_name = cluster.owner_of(victim)
    assert dead_name is not None
    dead = cluster.replicas[dead_name]
    orphaned = cluster.held_by(dead_name)
    survivors = [n for n in REPLICAS if n != dead_name]
    killed_at = database_now(cluster.database_url)
    dead.kill()
    fleet.kill(victim)  # its partition has no acting owner until the takeover

    cluster.wait_balanced(survivors, SETTLE)
    taken = first_acquisitions_after(read_lease_history(cluster.database_url), orphaned, killed_at)
    assert set(taken) == orphaned
    assert all(not dead.owns(e.owner) for e in taken.values())
    # Survivors own every partition within lease expiry + 1 s (the database's clock).
    slowest = max((e.at - killed_at).total_seconds() for e in taken.values())
    assert slowest <= TIMING.ttl + 1, f"last partition taken {slowest:.2f} s after the kill"

    wait_transition(cluster, since, victim, "offline")
    hooks.wait(titled(victim))
    time.sleep(QUIET_FOR)  # anything duplicated would have landed by now

    # Reported exactly once, alerted once; no other device changed state.
    assert transitions_since(cluster.database_url, since) == [(victim, "online", "offline")]
    assert [h.title for h in hooks.matching(titled(victim))] == [f"[clawbeat] {victim} is offline"]
    assert len(hooks.posts) == 1, [h.title for h in hooks.posts]
    states = device_states(cluster.database_url)
    assert states[victim] == "offline"
    assert all(states[d] == "online" for d in fleet.ids)
    assert (watch.latest(victim) or {}).get("state") == "offline"
    assert overlapping_owners(read_lease_history(cluster.database_url)) == []


def _stale_publishes(
    publishes: PublishLog,
    cluster: MonitorCluster,
    name: str,
    lost: set[int],
    woke_at: float,
) -> list[str]:
    """Status publishes by ``name`` after ``woke_at`` for a partition it did not hold then.

    It held a lost partition again only from an acquisition after it woke.
    """
    history = read_lease_history(cluster.database_url)
    replica = cluster.replicas[name]
    regained: dict[int, float] = {}
    for event in history:
        if (
            event.event == "acquire"
            and replica.owns(event.owner)
            and event.partition in lost
            and event.at.timestamp() >= woke_at - TIMING.ttl
        ):
            regained.setdefault(event.partition, event.at.timestamp())
    stale = []
    for publish in publishes.publishes():
        device = status_device(publish.topic)
        if publish.client != name or device is None or publish.at < woke_at:
            continue
        partition = cluster.partition_of(device)
        if partition in lost and publish.at < regained.get(partition, float("inf")):
            stale.append(f"{publish.topic} at +{publish.at - woke_at:.3f} s")
    return stale


@pytest.mark.publishes
def test_a_replica_frozen_past_its_lease_writes_and_publishes_nothing_for_what_it_lost_and_rejoins(
    cluster_broker: TestBroker,
    cluster: MonitorCluster,
    watch: ClusterWatch,
    spawned: Spawned,
    hooks: WebhookSink,
) -> None:
    fleet = Fleet(cluster_broker, spawned, size=60, spares=40)
    first = cluster.add("a")
    first.cli("channels", "add", "ops-hook", hooks.url("/ops"))
    start_cluster(cluster, watch, REPLICAS)
    frozen_name = "b"
    lost = cluster.held_by(frozen_name)
    victim = fleet.start_spare(cluster, lost)
    wait_online(cluster, fleet.all_ids())
    since = database_now(cluster.database_url)
    frozen = cluster.replicas[frozen_name]
    others = [n for n in REPLICAS if n != frozen_name]

    with publish_log(cluster_broker) as publishes:
        frozen.freeze()
        cluster.wait_balanced(others, SETTLE)  # its leases ran out and were taken
        # While it is frozen a device of a partition it lost dies: the new owner
        # reports it; the frozen replica will find the will in its backlog on waking.
        fleet.kill(victim)
        wait_transition(cluster, since, victim, "offline")
        hooks.wait(titled(victim))
        woke_at = time.time()
        frozen.thaw()
        # It rejoins: holds its share again, taken by handoff at new epochs.
        cluster.wait_balanced(REPLICAS, SETTLE)
        time.sleep(QUIET_FOR)
        stale = _stale_publishes(publishes, cluster, frozen_name, lost, woke_at)

    assert stale == [], f"{frozen_name} published for partitions it had lost: {stale}"
    # Nothing it wrote for the lost partitions landed: one transition, one alert, and
    # the device row as the new owner left it.
    assert transitions_since(cluster.database_url, since) == [(victim, "online", "offline")]
    assert [h.title for h in hooks.matching(titled(victim))] == [f"[clawbeat] {victim} is offline"]
    states = device_states(cluster.database_url)
    assert states[victim] == "offline"
    assert all(states[d] == "online" for d in fleet.ids)
    history = read_lease_history(cluster.database_url)
    back = [e for e in history if frozen.owns(e.owner) and e.event == "acquire" and e.at > since]
    assert back, f"{frozen_name} never took a partition again"
    assert all(e.previous_owner is None for e in back), "rejoined by handoff, not takeover"
    assert overlapping_owners(history) == []


def test_a_rolling_restart_of_every_replica_loses_and_invents_no_transition(
    cluster_broker: TestBroker,
    cluster: MonitorCluster,
    watch: ClusterWatch,
    spawned: Spawned,
) -> None:
    fleet = Fleet(cluster_broker, spawned, size=150, spares=60)
    start_cluster(cluster, watch, REPLICAS)
    wait_online(cluster, fleet.all_ids())
    since = database_now(cluster.database_url)
    expected: list[tuple[str, str | None, str]] = []

    for name in REPLICAS:
        held = cluster.held_by(name)
        # A device of this replica's partitions that dies while they are handed off,
        # and one that comes up meanwhile: neither may be lost.
        dying = fleet.start_spare(cluster, held)
        wait_online(cluster, [dying])
        step_since = database_now(cluster.database_url)
        expected.append((dying, None, "online"))
        assert cluster.replicas[name].terminate() == 0
        fleet.kill(dying)
        born = fleet.start_spare(cluster, held)
        cluster.restart(name, watch)
        cluster.wait_balanced(REPLICAS, SETTLE)
        wait_transition(cluster, step_since, dying, "offline")
        wait_transition(cluster, step_since, born, "online")
        expected += [(dying, "online", "offline"), (born, None, "online")]

    time.sleep(QUIET_FOR)
    assert sorted(transitions_since(cluster.database_url, since), key=str) == sorted(
        expected, key=str
    )
    states = device_states(cluster.database_url)
    assert all(states[d] == "online" for d in fleet.ids)
    assert overlapping_owners(read_lease_history(cluster.database_url)) == []


def test_postgres_restarted_under_the_cluster_leases_come_back_and_never_overlap(
    pg_cluster: RestartableServer,
    cluster_broker: TestBroker,
    cluster: MonitorCluster,
    watch: ClusterWatch,
    spawned: Spawned,
) -> None:
    fleet = Fleet(cluster_broker, spawned, size=150, spares=0)
    start_cluster(cluster, watch, REPLICAS)
    wait_online(cluster, fleet.all_ids())
    since = database_now(cluster.database_url)
    before = cluster.leases()

    pg_cluster.stop()
    # Down for longer than a lease: every replica must give up acting, and every lease
    # has expired by the database's clock when it comes back.
    stopped = time.monotonic()
    wait_until(
        lambda: time.monotonic() - stopped > TIMING.ttl + 2 * TIMING.renew_every,
        2 * TIMING.ttl + 10,
        what="the outage to outlast a lease",
    )
    pg_cluster.start()

    cluster.wait_balanced(REPLICAS, SETTLE)
    after = cluster.leases()
    assert all(after[p].epoch > before[p].epoch for p in before), "leases taken anew"
    time.sleep(QUIET_FOR)
    history = read_lease_history(cluster.database_url)
    assert overlapping_owners(history) == []
    assert transitions_since(cluster.database_url, since) == []
    states = device_states(cluster.database_url)
    assert all(states[d] == "online" for d in fleet.ids)
    assert all(r.running() for r in cluster.replicas.values())


def test_a_fourth_replica_takes_its_share_by_handoff_without_a_false_transition(
    cluster_broker: TestBroker,
    cluster: MonitorCluster,
    watch: ClusterWatch,
    spawned: Spawned,
) -> None:
    fleet = Fleet(cluster_broker, spawned, size=150, spares=0)
    start_cluster(cluster, watch, REPLICAS)
    wait_online(cluster, fleet.all_ids())
    since = database_now(cluster.database_url)
    seen = len(read_lease_history(cluster.database_url))

    cluster.start("d", watch)
    cluster.wait_balanced([*REPLICAS, "d"], SETTLE)
    time.sleep(QUIET_FOR)

    history = read_lease_history(cluster.database_url)
    moves = [e for e in history[seen:] if e.event == "acquire"]
    newcomer = cluster.replicas["d"]
    # Only what the newcomer takes moves, each released by its old owner first.
    assert moves
    others = [describe(e) for e in moves if not newcomer.owns(e.owner)]
    assert others == [], "partitions moved between the old replicas"
    takeovers = [describe(e) for e in moves if e.previous_owner is not None]
    assert takeovers == [], "taken after a lease ran out, not handed off"
    assert len(moves) == len(cluster.held_by("d"))
    assert overlapping_owners(history) == []
    assert transitions_since(cluster.database_url, since) == []

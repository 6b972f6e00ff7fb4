"""Several real ``clawbeat monitor`` replicas on one broker and one PostgreSQL, for fault tests.

Each replica is a :class:`~tests.harness.monitor.MonitorProcess` with a name, a broker
user of its own (the broker binds client ids to usernames) and short lease timing. The
test watches the cluster the way ops would: the lease rows and the lease history in
the database, the transitions table, the retained status topics, and who published
what on the broker (its debug log, read as it is written).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.cluster.partitions import partition_of
from tests.harness.monitor import MonitorProcess, StatusWatch, _query
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import Received

ROOT = "clawbeat/v1"


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """What the replicas are started with; the tests derive their margins from it."""

    ttl: float = 3.0
    renew_every: float = 0.5
    margin: float = 1.0

    @property
    def takeover(self) -> float:
        """Longest a dead replica's partition waits for a new owner: its lease runs out
        at most ``ttl`` after the replica's last renewal, and the survivors look every
        ``renew_every``."""
        return self.ttl + self.renew_every

    def settings(self) -> dict[str, object]:
        return {
            "lease_ttl": self.ttl,
            "lease_renew_every": self.renew_every,
            "lease_margin": self.margin,
        }


class ClusterWatch(StatusWatch):
    """Status topics plus every replica's presence."""

    def __init__(self, broker: TestBroker) -> None:
        super().__init__(broker)
        self.replicas_topic = f"{self.root}/monitor/replicas/+/presence"
        if self.replicas_topic not in self.topics:
            self.subscribe(self.replicas_topic)

    def wait_replica_online(self, name: str, *, after: float, timeout: float) -> None:
        topic = f"{self.root}/monitor/replicas/{name}/presence"

        def online(m: Received) -> bool:
            return m.topic == topic and m.at >= after and json.loads(m.payload)["state"] == "online"

        try:
            self.wait_for(online, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"replica {name} never said it is online on {topic}") from exc


class Replica(MonitorProcess):
    """One replica: ``name`` is its ``CLAWBEAT_REPLICA`` and its broker user."""

    __test__ = False

    def __init__(
        self, broker: TestBroker, database_url: str, log_path: Path, name: str, **settings: object
    ) -> None:
        super().__init__(
            broker,
            database_url,
            log_path,
            mqtt_url=broker.url(name),
            replica=name,
            **settings,
        )
        self.name = name
        self.frozen = False

    def owns(self, owner: str | None) -> bool:
        """Whether a lease owner name is this replica's (its name plus a run suffix)."""
        return owner is not None and owner.split(":", 1)[0] == self.name

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if self.frozen and self.running():
            self.thaw()
        super().stop()


@dataclass(frozen=True, slots=True)
class LeaseRow:
    partition: int
    owner: str | None  # the live owner, None when released or expired
    epoch: int


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    partition: int
    epoch: int
    owner: str
    event: str  # acquire | release
    at: datetime
    previous_owner: str | None
    previous_expires_at: datetime | None


def read_leases(database_url: str) -> dict[int, LeaseRow]:
    async def read(session: AsyncSession) -> dict[int, LeaseRow]:
        rows = await session.execute(
            text(
                "SELECT partition, epoch, CASE WHEN expires_at > clock_timestamp() "
                "THEN owner END AS owner FROM partition_leases"
            )
        )
        return {r.partition: LeaseRow(r.partition, r.owner, r.epoch) for r in rows}

    return _query(database_url, read)


def read_lease_history(database_url: str) -> list[LeaseEvent]:
    async def read(session: AsyncSession) -> list[LeaseEvent]:
        rows = await session.execute(
            text(
                "SELECT partition, epoch, owner, event, at, previous_owner, "
                "previous_expires_at FROM lease_history ORDER BY id"
            )
        )
        return [
            LeaseEvent(
                partition=r.partition,
                epoch=r.epoch,
                owner=r.owner,
                event=r.event,
                at=r.at,
                previous_owner=r.previous_owner,
                previous_expires_at=r.previous_expires_at,
            )
            for r in rows
        ]

    return _query(database_url, read)


def database_now(database_url: str) -> datetime:
    async def read(session: AsyncSession) -> datetime:
        now: datetime = (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()
        return now

    return _query(database_url, read)


def overlapping_owners(history: list[LeaseEvent]) -> list[str]:
    """Every place the lease history shows two owners of one partition at one instant.

    Each acquisition records the row as the acquirer found it under its lock: a lease
    is taken only when released (``previous_owner`` NULL, after a release of the
    previous epoch) or expired (``previous_expires_at`` at or before the acquisition),
    and epochs follow one another with no gap. Empty when ownership never overlapped.
    """
    problems: list[str] = []
    by_partition: dict[int, list[LeaseEvent]] = {}
    for event in history:
        by_partition.setdefault(event.partition, []).append(event)
    for partition, events in sorted(by_partition.items()):
        acquired = [e for e in events if e.event == "acquire"]
        released = {e.epoch: e for e in events if e.event == "release"}
        for before, after in itertools.pairwise(acquired):
            where = f"partition {partition} epoch {after.epoch} ({after.owner})"
            if after.epoch != before.epoch + 1:
                problems.append(f"{where}: follows epoch {before.epoch}")
            if after.previous_owner is None:
                release = released.get(before.epoch)
                if release is None or release.at > after.at:
                    problems.append(f"{where}: taken as released, {before.owner} never released")
            elif after.previous_owner != before.owner:
                problems.append(f"{where}: taken from {after.previous_owner}, not {before.owner}")
            elif after.previous_expires_at is None or after.previous_expires_at > after.at:
                problems.append(
                    f"{where}: taken at {after.at} from {before.owner}, whose lease ran "
                    f"until {after.previous_expires_at}"
                )
    return problems


def transitions_since(database_url: str, since: datetime) -> list[tuple[str, str | None, str]]:
    """(device, old, new) of every transition stored with ``at`` after ``since``."""

    async def read(session: AsyncSession) -> list[tuple[str, str | None, str]]:
        rows = await session.execute(
            text(
                "SELECT device_id, old_state, new_state FROM transitions "
                "WHERE at > :since ORDER BY at, id"
            ),
            {"since": since},
        )
        return [(r.device_id, r.old_state, r.new_state) for r in rows]

    return _query(database_url, read)


def device_states(database_url: str) -> dict[str, str]:
    async def read(session: AsyncSession) -> dict[str, str]:
        rows = await session.execute(text("SELECT id, state FROM devices"))
        return {r.id: r.state for r in rows}

    return _query(database_url, read)


class MonitorCluster:
    """Replicas of one cluster: started, killed, frozen and stopped by name."""

    def __init__(
        self,
        broker: TestBroker,
        database_url: str,
        log_dir: Path,
        *,
        partitions: int,
        timing: LeaseTiming,
        **settings: object,
    ) -> None:
        self.broker = broker
        self.database_url = database_url
        self.log_dir = log_dir
        self.partitions = partitions
        self.timing = timing
        self.settings = {
            "cluster": "true",
            "partitions": partitions,
            **timing.settings(),
            **settings,
        }
        self.replicas: dict[str, Replica] = {}

    def add(self, name: str) -> Replica:
        if name not in self.broker.replica_passwords:
            self.broker.add_monitor_users([name])
        replica = Replica(
            self.broker, self.database_url, self.log_dir / f"{name}.log", name, **self.settings
        )
        self.replicas[name] = replica
        return replica

    def start(self, name: str, watch: ClusterWatch, timeout: float = 60.0) -> Replica:
        replica = self.replicas.get(name) or self.add(name)
        started = time.monotonic()
        replica.start(timeout, probe=watch)
        watch.wait_replica_online(name, after=started, timeout=timeout)
        return replica

    def restart(self, name: str, watch: ClusterWatch) -> Replica:
        """A new process under the same name (a new owner to the leases)."""
        self.replicas.pop(name)
        self.add(name)
        return self.start(name, watch)

    def running(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.running()]

    def leases(self) -> dict[int, LeaseRow]:
        return read_leases(self.database_url)

    def held_by(self, name: str) -> set[int]:
        replica = self.replicas[name]
        return {p for p, row in self.leases().items() if replica.owns(row.owner)}

    def partition_of(self, device_id: str) -> int:
        return partition_of(device_id, self.partitions)

    def owner_of(self, device_id: str) -> str | None:
        """The replica name holding the device's partition now, if any."""
        row = self.leases()[self.partition_of(device_id)]
        for name, replica in self.replicas.items():
            if replica.owns(row.owner):
                return name
        return None

    def balanced(self, names: list[str]) -> bool:
        """Every partition held by one of ``names``, each holding its share (P // R or
        one more), and no other owner."""
        leases = self.leases()
        counts = dict.fromkeys(names, 0)
        for row in leases.values():
            owner = next((n for n in names if self.replicas[n].owns(row.owner)), None)
            if owner is None:
                return False
            counts[owner] += 1
        share = self.partitions // len(names)
        return all(share <= c <= share + 1 for c in counts.values())

    def wait_balanced(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.balanced(names):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"partitions not spread over {names} within {timeout}s: {self.leases()}\n"
                    + "\n".join(r.log_tail(20) for r in self.running())
                )
            time.sleep(self.timing.renew_every / 2)

    def close(self) -> None:
        for replica in self.replicas.values():
            with contextlib.suppress(Exception):
                replica.stop()


@dataclass(frozen=True, slots=True)
class Publish:
    at: float  # time.time() when the line was read: at or after the broker received it
    client: str
    topic: str


_RECEIVED = re.compile(r"Received PUBLISH from (\S+) \(d\d, q\d, r\d, m\d+, '([^']*)'")


class PublishLog:
    """Who published what, from the broker's debug log (``TestBroker.log_publishes``).

    A thread reads the log as the broker writes it and stamps each line with the wall
    clock when read, the clock PostgreSQL stamps lease history with on this machine.
    A stamp is never earlier than the publish, so "published after the lease was
    gone" is never a false accusation by more than the reading delay.
    """

    def __init__(self, path: Path, *, every: float = 0.01) -> None:
        self.path = path
        self.every = every
        self._found: list[Publish] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="broker-log")
        self._thread.start()

    def _follow(self) -> None:
        with self.path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            pending = b""
            while not self._stop.is_set():
                chunk = log.read()
                if not chunk:
                    time.sleep(self.every)
                    continue
                stamp = time.time()
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                found = [
                    Publish(stamp, m.group(1), m.group(2))
                    for line in lines
                    if (m := _RECEIVED.search(line.decode(errors="replace")))
                ]
                with self._lock:
                    self._found.extend(found)

    def publishes(self) -> list[Publish]:
        with self._lock:
            return list(self._found)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def status_device(topic: str) -> str | None:
    prefix = f"{ROOT}/status/"
    return topic[len(prefix) :] if topic.startswith(prefix) else None


@contextlib.contextmanager
def publish_log(broker: TestBroker) -> Iterator[PublishLog]:
    log = PublishLog(broker.log_path)
    try:
        yield log
    finally:
        log.close()

"""The cluster view from the database: `clawbeat cluster status` and the cluster metrics.

Three real LeaseKeepers share real PostgreSQL in this event loop; the CLI runs as its own
process (asynchronously, so the keepers keep renewing meanwhile). One keeper is then
killed (its loop cancelled without leaving, as SIGKILL leaves it): the view shows it
gone and its partitions taken over, and the survivors' metrics count the takeovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.cluster import leases
from monitor.cluster.keeper import KeeperTiming, LeaseKeeper
from monitor.metrics_cluster import ClusterCollector
from monitor.store.rows import DeviceRow
from monitor.store.writer import WriteBehind
from tests.harness.api import wait_for
from tests.harness.db_fixtures import database_name, open_store
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.anyio

PARTITIONS = 9
TIMING = KeeperTiming(ttl=2.0, renew_every=0.3, margin=0.5)
LAGS = {"mon-a": 0.25, "mon-b": 1.5, "mon-c": 0.0}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[str]:
    template: str = request.getfixturevalue("_pg_head_template")
    name = database_name(request.node.nodeid)
    yield pg_server.create_database(name, template=template)
    pg_server.drop_database(name)


async def clawbeat(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        *args,
        cwd=ROOT,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Replicas:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.keepers: dict[str, LeaseKeeper] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def add(self, name: str, **kwargs: Any) -> LeaseKeeper:
        keeper = LeaseKeeper(
            self.sessions,
            owner=leases.replica_identity(name),
            partitions=PARTITIONS,
            timing=TIMING,
            lag=lambda: LAGS[name],
            **kwargs,
        )
        await keeper.start()
        self.keepers[name] = keeper
        self.tasks[name] = asyncio.create_task(keeper.run())
        return keeper

    async def kill(self, name: str) -> LeaseKeeper:
        """Stop renewing without releasing or leaving: what SIGKILL leaves behind."""
        task = self.tasks.pop(name)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return self.keepers.pop(name)

    def balanced(self) -> bool:
        held = [set(k.leases) for k in self.keepers.values()]
        sizes = [len(h) for h in held]
        return set().union(*held) == set(range(PARTITIONS)) and max(sizes) - min(sizes) <= 1


@contextlib.asynccontextmanager
async def replicas(url: str) -> AsyncIterator[Replicas]:
    async with open_store(url) as sessions:
        running = Replicas(sessions)
        try:
            yield running
        finally:
            for task in running.tasks.values():
                task.cancel()
            await asyncio.gather(*running.tasks.values(), return_exceptions=True)


async def test_cluster_status_shows_owners_lag_lease_age_and_a_takeover(pg_url: str) -> None:
    async with replicas(pg_url) as running:
        for name in LAGS:
            await running.add(name)
        await wait_for(running.balanced, timeout=20, what="three-way spread")

        code, out, err = await clawbeat("cluster", "status", "--json", "--database-url", pg_url)
        assert code == 0, err
        view = json.loads(out)
        assert view["mode"] == "cluster"
        assert view["partitions"] == PARTITIONS
        assert view["unowned"] == []
        members = {m["replica"]: m for m in view["members"]}
        assert set(members) == set(LAGS)
        for name, keeper in running.keepers.items():
            member = members[name]
            assert member["owner"] == keeper.owner
            assert member["alive"] is True
            assert member["lag_seconds"] == LAGS[name]
            # Renewed within a lease, as the database's clock counts it.
            assert 0 <= member["renewed_ago"] < TIMING.ttl
        # Partitions may move by handoff between the keepers' last look and the CLI's,
        # so the owners are checked against the view's own lease table.
        by_owner: dict[str, set[int]] = {}
        for lease in view["leases"]:
            assert lease["owner"] is not None
            assert 0 < lease["expires_in"] <= TIMING.ttl
            assert lease["epoch"] >= 1
            by_owner.setdefault(lease["owner"], set()).add(lease["partition"])
        assert {m["owner"]: set(m["partitions"]) for m in members.values()} == by_owner
        assert sorted(len(p) for p in by_owner.values()) == [3, 3, 3]

        code, table, err = await clawbeat(
            "cluster", "status", "--partitions", "--database-url", pg_url
        )
        assert code == 0, err
        lines = table.splitlines()
        assert lines[0].startswith(f"3 replicas live, {PARTITIONS} partitions, 0 unowned")
        assert lines[1].split() == [
            "REPLICA", "STATE", "PARTITIONS", "OWNS", "RENEWED", "LAG", "JOINED", "OWNER"
        ]  # fmt: skip
        rows = {line.split()[0]: line.split() for line in lines[2:5]}
        assert set(rows) == set(LAGS)
        assert rows["mon-b"][1] == "live"
        assert rows["mon-b"][4:7] == [rows["mon-b"][4], "ago", "1.5s"]  # RENEWED, LAG
        assert rows["mon-b"][-1] == running.keepers["mon-b"].owner
        assert any(line.split()[:1] == ["PARTITION"] for line in lines)

        dead = await running.kill("mon-c")
        lost = set(dead.leases)
        await wait_for(running.balanced, timeout=TIMING.ttl * 4, what="survivors take over")
        survivors = list(running.keepers.values())
        assert sum(k.stats.takeovers for k in survivors) == len(lost)

        code, out, err = await clawbeat("cluster", "status", "--json", "--database-url", pg_url)
        assert code == 0, err
        view = json.loads(out)
        members = {m["replica"]: m for m in view["members"]}
        assert members["mon-c"]["alive"] is False
        assert members["mon-c"]["partitions"] == []
        assert members["mon-c"]["renewed_ago"] >= TIMING.ttl
        takeovers = {e["partition"] for e in view["recent"] if e["takeover_from"] == dead.owner}
        assert takeovers == lost

        code, table, err = await clawbeat("cluster", "status", "--database-url", pg_url)
        assert code == 0, err
        assert table.splitlines()[0].startswith("2 replicas live")
        assert any(
            line.startswith("takeover: partition ") and f"from {dead.owner}" in line
            for line in table.splitlines()
        )
        gone = next(line for line in table.splitlines() if line.startswith("mon-c "))
        assert gone.split()[1:4] == ["gone", "0", "-"]


async def test_cluster_status_on_sqlite_says_single_replica(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'clawbeat.db'}"
    code, _, err = await clawbeat("db", "upgrade", "--database-url", url)
    assert code == 0, err
    code, out, err = await clawbeat("cluster", "status", "--database-url", url)
    assert code == 0, err
    assert out.splitlines() == [
        f"single replica: {url} is SQLite, which runs one monitor (cluster mode needs PostgreSQL)"
    ]
    code, out, err = await clawbeat("cluster", "status", "--json", "--database-url", url)
    assert (code, json.loads(out)) == (0, {"mode": "single"})


def scrape(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_metrics_count_partitions_renewals_takeovers_and_fenced_rows(pg_url: str) -> None:
    async with replicas(pg_url) as running:
        a = await running.add("mon-a")
        await wait_for(lambda: len(a.leases) == PARTITIONS, timeout=10, what="a owns all")
        writer = WriteBehind(running.sessions, flush_interval=60, fence=a.fence)
        registry = CollectorRegistry()
        registry.register(ClusterCollector(lambda: a, lambda: writer))
        first = scrape(registry)
        assert first["clawbeat_cluster_partitions_owned"] == PARTITIONS
        assert first["clawbeat_cluster_partitions_acting"] == PARTITIONS
        assert first["clawbeat_cluster_lease_renew_seconds_count"] >= 1
        assert (
            first["clawbeat_cluster_lease_renew_seconds_bucket{le=+Inf}"]
            == (first["clawbeat_cluster_lease_renew_seconds_count"])
        )
        assert first["clawbeat_cluster_lease_changes_total{event=acquired}"] == PARTITIONS
        assert first["clawbeat_cluster_takeovers_total"] == 0
        assert first["clawbeat_cluster_fenced_rows_total"] == 0

        # a freezes (stops renewing) with a row queued; b takes every partition over.
        await running.kill("mon-a")
        b = await running.add("mon-b")
        await wait_for(lambda: len(b.leases) == PARTITIONS, timeout=TIMING.ttl * 4, what="b")
        now = datetime.now(UTC)
        writer.put_device(DeviceRow(id="plug-1", state="online", since=now, last_seen=now))
        await writer.flush()
        assert writer.stats.rows_fenced == 1

        after = scrape(registry)
        assert after["clawbeat_cluster_fenced_rows_total"] == 1
        assert after["clawbeat_cluster_partitions_acting"] == 0  # its clock says it is over
        b_registry = CollectorRegistry()
        b_registry.register(ClusterCollector(lambda: b, lambda: writer))
        assert scrape(b_registry)["clawbeat_cluster_takeovers_total"] == PARTITIONS

        alone = CollectorRegistry()
        alone.register(ClusterCollector(lambda: None, lambda: writer))
        assert not any(name.startswith("clawbeat_cluster") for name in scrape(alone))

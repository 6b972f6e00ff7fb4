"""`/api/cluster`, and the whole fleet from a replica that owns only part of it.

A real monitor (broker, PostgreSQL, HTTP) runs with a real LeaseKeeper of its own,
sharing the partitions with a second replica's keeper on the same database. Rows for
the other replica's partitions are written to the database as their owner writes them
(the other replica's monitor is not needed for that): the monitor's summary, device
list, device page and live endpoint show those rows, not what its own engine holds, and
its own partitions live from its engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.cluster.keeper import KeeperTiming, LeaseKeeper
from monitor.cluster.leases import replica_identity
from monitor.cluster.partitions import ids_in
from monitor.store import migrate, repository
from monitor.store.rows import DeviceRow
from tests.harness.api import FakeDevice, RunningMonitor, running_monitor, wait_for
from tests.harness.db_fixtures import database_name, open_store
from tests.harness.mosquitto import TestBroker
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.anyio

PARTITIONS = 8
TIMING = KeeperTiming(ttl=3.0, renew_every=0.3, margin=0.5)


async def test_single_monitor_on_sqlite_is_one_replica(broker: TestBroker, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'clawbeat.db'}"
    await migrate.upgrade(url)
    async with running_monitor(broker, url) as api:
        async with api.client() as anonymous:
            assert (await anonymous.get("/api/cluster")).status_code == 401
        async with api.reader() as reader:
            response = await reader.get("/api/cluster")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "single"
    assert body["replica"] == api.service.instance
    assert (body["owner"], body["members"], body["leases"], body["unowned"]) == (None, [], [], [])


@contextlib.asynccontextmanager
async def keepers(*made: LeaseKeeper) -> AsyncIterator[None]:
    for keeper in made:
        await keeper.start()
    tasks = [asyncio.create_task(k.run()) for k in made]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_cluster_view_and_the_whole_fleet_from_a_replica_owning_part_of_it(
    request: pytest.FixtureRequest, broker: TestBroker, pg_server: PostgresServer
) -> None:
    template: str = request.getfixturevalue("_pg_head_template")
    name = database_name(request.node.nodeid)
    url = pg_server.create_database(name, template=template)
    try:
        async with (
            running_monitor(broker, url, partitions=PARTITIONS, cluster=True) as api,
            open_store(url) as other_sessions,
        ):
            await check_cluster(api, broker, other_sessions)
    finally:
        pg_server.drop_database(name)


async def check_cluster(
    api: RunningMonitor,
    broker: TestBroker,
    other_sessions: async_sessionmaker[AsyncSession],
) -> None:
    service = api.service
    mine = service.keeper  # on PostgreSQL the monitor is a cluster replica
    assert mine is not None
    theirs = LeaseKeeper(
        other_sessions,
        owner=replica_identity("mon-b"),
        partitions=PARTITIONS,
        timing=TIMING,
        lag=lambda: 0.5,
    )
    async with keepers(theirs):
        await wait_for(
            lambda: len(mine.leases) == len(theirs.leases) == PARTITIONS // 2,
            timeout=20,
            what="an even split",
        )
        own, other = set(mine.leases), set(theirs.leases)
        async with api.reader() as reader:
            response = await reader.get("/api/cluster")
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["mode"] == "cluster"
            assert body["owner"] == mine.owner
            assert body["partitions"] == PARTITIONS
            members = {m["owner"]: m for m in body["members"]}
            assert set(members) == {mine.owner, theirs.owner}
            assert members[theirs.owner]["replica"] == "mon-b"
            assert members[theirs.owner]["lag_seconds"] == 0.5
            assert members[mine.owner]["lag_seconds"] is not None
            owners = {lease["partition"]: lease["owner"] for lease in body["leases"]}
            held_here = {p for p, o in owners.items() if o == mine.owner}
            assert set(members[mine.owner]["partitions"]) == held_here
            assert all(0 <= m["renewed_ago"] < TIMING.ttl for m in members.values())

            # A device of the other replica's partitions beats to this monitor too (one
            # Mosquitto: every replica hears everything); its owner judges it offline.
            heard, *silent = ids_in(other, 3, "far", of=PARTITIONS)
            (near,) = ids_in(own, 1, "near", of=PARTITIONS)
            device, local = FakeDevice(broker, heard), FakeDevice(broker, near)
            try:
                await device.beat(interval=60)
                await local.beat(interval=60)
                await wait_for(
                    lambda: (s := service.engine) is not None and heard in s and near in s,
                    what="both in the engine",
                )

                async def stored(device_id: str) -> bool:
                    async with service.sessions() as session:
                        row = await repository.get_device(session, device_id=device_id)
                        return row is not None

                # This replica writes its own partitions' devices only; the other's
                # owner writes its verdict on the one both heard.
                await wait_for(lambda: stored(near), what="this replica's own device stored")
                assert not await stored(heard)
                now = datetime.now(UTC)
                async with other_sessions.begin() as session:
                    await repository.upsert_devices(
                        session,
                        rows=[
                            DeviceRow(id=heard, state="offline", since=now, last_seen=now),
                            DeviceRow(id=silent[0], state="online", since=now, last_seen=now),
                            DeviceRow(id=silent[1], state="stale", since=now, last_seen=now),
                        ],
                        now=now,
                    )
                snapshot = service.engine.snapshot(heard) if service.engine else None
                assert snapshot is not None
                assert snapshot.state == "online"
                listed = (await reader.get("/api/devices", params={"limit": 100})).json()
                states = {item["id"]: item["state"] for item in listed["items"]}
                assert states == {
                    heard: "offline",
                    silent[0]: "online",
                    silent[1]: "stale",
                    near: "online",
                }
                assert (await reader.get(f"/api/devices/{heard}")).json()["state"] == "offline"
                live = (
                    await reader.get(
                        "/api/live", params=[("id", i) for i in (near, heard, *silent)]
                    )
                ).json()
                assert [(i["id"], i["state"], i["confirmed"]) for i in live["items"]] == [
                    (near, "online", True),
                    (heard, "offline", False),
                    (silent[0], "online", False),
                    (silent[1], "stale", False),
                ]

                async def whole_fleet() -> bool:
                    summary = (await reader.get("/api/summary")).json()
                    return bool(summary["total"] == 4 and summary["counts"]["offline"] == 1)

                await wait_for(whole_fleet, timeout=5 * service.settings.summary_interval)
                summary = (await reader.get("/api/summary")).json()
                assert {k: v for k, v in summary["counts"].items() if v} == {
                    "online": 2,
                    "offline": 1,
                    "stale": 1,
                }

                metrics = (await reader.get("/metrics")).text
                samples = {
                    s.name: s.value
                    for family in text_string_to_metric_families(metrics)
                    for s in family.samples
                    if not s.labels
                }
                assert samples["clawbeat_cluster_partitions_owned"] == len(mine.leases)
                assert samples["clawbeat_cluster_lease_renew_seconds_count"] >= 1
                assert samples["clawbeat_cluster_takeovers_total"] == 0
                assert samples["clawbeat_cluster_fenced_rows_total"] == 0
            finally:
                device.close()
                local.close()

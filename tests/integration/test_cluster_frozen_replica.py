"""A replica frozen (SIGSTOP) past its lease, mid-flush, writes nothing when it wakes.

The frozen process holds its fenced transaction open, with the lease rows share-locked.
PostgreSQL ends that session after the fence's idle limit, so a second replica takes
every partition over; on SIGCONT the frozen one's flush fails or is rejected, it acts
for nothing, and it rejoins (at new epochs) by handoff.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from monitor.cluster.keeper import LeaseKeeper
from monitor.cluster.leases import replica_identity
from tests.harness.api import wait_for
from tests.harness.cluster_replica import STATE, TIMING
from tests.harness.db_fixtures import database_name, open_store
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.anyio

PARTITIONS = 4
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[str]:
    template: str = request.getfixturevalue("_pg_head_template")
    name = database_name(request.node.nodeid)
    yield pg_server.create_database(name, template=template)
    pg_server.drop_database(name)


class Replica:
    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.cluster_replica", url, str(PARTITIONS)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def seen(self, event: str, since: int = 0) -> dict[str, Any] | None:
        return next((ln for ln in self.lines[since:] if ln["event"] == event), None)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait()
        self._reader.join(timeout=5)


async def test_a_replica_frozen_past_its_lease_mid_flush_writes_nothing_when_it_wakes(
    pg_url: str,
) -> None:
    replica = Replica(pg_url)
    try:
        await wait_for(lambda: replica.seen("committed"), timeout=30, what="the replica's flush")
        assert replica.seen("committed")["written"] == PARTITIONS  # type: ignore[index]
        since = len(replica.lines)
        await wait_for(lambda: replica.seen("locked", since), timeout=10, what="a flush")
        replica.process.send_signal(signal.SIGSTOP)  # inside the fenced transaction
        frozen_at = time.monotonic()

        async with open_store(pg_url) as sessions:

            async def landed() -> int:
                async with sessions() as session:
                    count = await session.execute(
                        text("SELECT count(*) FROM transitions WHERE new_state = :s"),
                        {"s": STATE},
                    )
                    return int(count.scalar() or 0)

            before = await landed()
            survivor = LeaseKeeper(
                sessions, owner=replica_identity("survivor"), partitions=PARTITIONS, timing=TIMING
            )
            await survivor.start()
            steps = asyncio.create_task(survivor.run())
            try:
                # Lease expiry plus the idle limit that frees the frozen locks.
                await wait_for(
                    lambda: len(survivor.leases) == PARTITIONS,
                    timeout=TIMING.ttl * 2 + 10,
                    what="the survivor to take every partition",
                )
                took_over = time.monotonic()
                replica.process.send_signal(signal.SIGCONT)
                woke = time.monotonic()
                await wait_for(
                    lambda: any(ln.get("rejoined") for ln in replica.lines),
                    timeout=30,
                    what="the woken replica to rejoin by handoff",
                )
                assert await landed() == before  # nothing it queued landed, ever
            finally:
                steps.cancel()
                await asyncio.gather(steps, return_exceptions=True)
    finally:
        replica.kill()

    assert took_over > frozen_at
    after_wake = [ln for ln in replica.lines if ln["t"] > woke and ln["event"] != "held"]
    assert after_wake, "the replica said nothing after waking"
    for line in after_wake:
        assert line.get("written", 0) == 0, line
    # Until it rejoined, it acted for nothing (its monotonic clock ran while frozen).
    for line in after_wake:
        if line.get("rejoined"):
            break
        assert line["acting"] == [], line

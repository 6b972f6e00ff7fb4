"""A replica for fault tests: a lease keeper plus a writer flushing what it queued.

``python -m tests.harness.cluster_replica URL PARTITIONS`` runs a keeper alone until it
holds every partition, captures that fence (the epochs its queued writes carry) and
then flushes one transition per partition every 50 ms under it, forever. Each flush
opens a transaction, takes the fence, sleeps 0.2 s inside it (a window to freeze the
process holding the lease locks) and commits. Every step is a JSON line on stdout with
this process's monotonic time (the same clock as the test's), what it may act for,
and what landed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime

from monitor.cluster import fencing
from monitor.cluster.keeper import KeeperTiming, LeaseKeeper
from monitor.cluster.leases import replica_identity
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.rows import TransitionRow

TIMING = KeeperTiming(ttl=2.0, renew_every=0.3, margin=0.5)
STATE = "frozen-replica"


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


async def main(url: str, partitions: int) -> None:
    engine = create_engine_for(url)
    sessions = make_session_factory(engine)
    keeper = LeaseKeeper(
        sessions, owner=replica_identity("frozen"), partitions=partitions, timing=TIMING
    )
    await keeper.start()
    steps = asyncio.create_task(keeper.run())
    while len(keeper.leases) < partitions:  # noqa: ASYNC110 - polls another task's state
        await asyncio.sleep(0.05)
    queued = keeper.fence()
    devices: dict[int, str] = {}
    n = 0
    while len(devices) < partitions:
        devices.setdefault(queued.partition(f"dev-{n}"), f"dev-{n}")
        n += 1
    say("held", epochs={str(p): e for p, e in queued.epochs.items()})

    def acting() -> list[int]:  # judged when each line is written, not when the flush began
        return [p for p in range(partitions) if keeper.acting(p)]

    def rejoined() -> bool:
        return any(lease.epoch != queued.epochs.get(p) for p, lease in keeper.leases.items())

    while True:
        try:
            async with sessions.begin() as session:
                outcome = await fencing.insert_transitions(
                    session,
                    fence=queued,
                    rows=[
                        TransitionRow(d, "online", STATE, datetime.now(UTC))
                        for d in devices.values()
                    ],
                )
                say("locked", acting=acting(), written=outcome.written, rejoined=rejoined())
                await asyncio.sleep(0.2)
            say("committed", acting=acting(), written=outcome.written, rejoined=rejoined())
        except Exception as exc:  # reported to the test, which decides
            say("failed", acting=acting(), error=type(exc).__name__, rejoined=rejoined())
        await asyncio.sleep(0.05)
    steps.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

"""Clock offsets through the real monitor: estimated, stored, kept out of latency.

Every test runs on SQLite and PostgreSQL (the bulk upsert is spelled per dialect).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from monitor.liveness import LivenessEngine
from monitor.state_rows import engine_snapshot
from monitor.store import repository
from monitor.web.views import device_out
from tests.harness.api import FakeDevice, running_monitor, wait_for
from tests.harness.db_fixtures import open_store
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.anyio

HOUR = 3600.0


async def test_a_wrong_clock_is_estimated_stored_and_kept_out_of_latency(
    broker: TestBroker, database_url: str
) -> None:
    device = FakeDevice(broker, "skewed-1")
    try:
        async with running_monitor(broker, database_url) as monitor:
            for _ in range(3):
                await device.beat(interval=60.0, ts=time.time() + HOUR)
            async with monitor.reader() as reader:

                async def three_beats() -> dict[str, Any] | None:
                    response = await reader.get("/api/devices/skewed-1")
                    body: dict[str, Any] = response.json()
                    return body if response.status_code == 200 and body["last_seq"] == 2 else None

                live = await wait_for(three_beats, what="skewed-1 with its three heartbeats")
                assert live["clock_offset"] == pytest.approx(HOUR, abs=5.0)
                assert live["clock_skewed"] is True

                async def rolled_up() -> dict[str, Any] | None:
                    path = "/api/devices/skewed-1/heartbeats"
                    body: dict[str, Any] = (await reader.get(path)).json()
                    return body if sum(p["count"] for p in body["points"]) == 3 else None

                series = await wait_for(rolled_up, what="three heartbeats in the rollups")
                latencies = [p["latency_max_ms"] for p in series["points"] if p["count"]]
                assert latencies
                assert all(0 <= ms < 5_000 for ms in latencies), latencies
            async with monitor.client() as anonymous:
                metrics = (await anonymous.get("/metrics")).text
            assert "clawbeat_devices_clock_skewed 1.0" in metrics
        # The monitor flushed its device rows on the way out, clock_offset with them: the
        # row the API shows for a device the monitor does not track, and what a restarted
        # monitor loads (so it keeps correcting that device's latency).
        async with open_store(database_url) as sessions, sessions() as session:
            [stored] = await repository.load_devices(session)
        assert stored.clock_offset == pytest.approx(HOUR, abs=5.0)
        engine = LivenessEngine()
        engine.load([engine_snapshot(stored)], 0.0, time.time())
        assert engine.clock_skewed == 1
        assert device_out(None, engine.snapshot("skewed-1")).clock_skewed is True
    finally:
        device.close()

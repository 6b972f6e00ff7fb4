"""Missed heartbeats in the API's heartbeat series, against the real monitor.

Counted while they are missed, inside one session: a silent device's figure grows as its
beats fall due; a new session after a clean shutdown owes nothing for the gap.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.harness.api import FakeDevice, RunningMonitor, wait_for
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.anyio

INTERVAL = 0.5  # announced; with the harness's grace 1 s and missed limit 2: stale at 2 s


@pytest.fixture
async def reader(monitor_api: RunningMonitor) -> AsyncIterator[httpx.AsyncClient]:
    async with monitor_api.reader() as client:
        yield client


async def _figures(client: httpx.AsyncClient, path: str) -> tuple[int, int]:
    body: dict[str, Any] = (await client.get(path, params={"range": "1h"})).json()
    points = body["points"]
    return sum(p["count"] for p in points), sum(p["missed"] for p in points)


async def _state(client: httpx.AsyncClient, device_id: str) -> str | None:
    response = await client.get(f"/api/devices/{device_id}")
    return str(response.json()["state"]) if response.status_code == 200 else None


async def test_a_silent_device_counts_its_missed_beats_while_it_is_stale(
    monitor_api: RunningMonitor, reader: httpx.AsyncClient, broker: TestBroker
) -> None:
    device = FakeDevice(broker, "mute-1")
    try:
        for _ in range(3):
            await device.beat(interval=INTERVAL)
        # Then silence, still connected.
        await wait_for(
            lambda: _is(reader, "mute-1", "stale"),
            what="mute-1 stale",
        )
        path = "/api/devices/mute-1/heartbeats"
        _, first = await _figures(reader, path)

        # One beat owed per interval while it stays silent: the figure grows with no
        # heartbeat arriving (4 more take 2 s; the wait allows for a loaded machine).
        async def grown() -> tuple[int, int] | None:
            figures = await _figures(reader, path)
            return figures if figures[1] >= first + 4 else None

        count, missed = await wait_for(grown, timeout=20 * INTERVAL * 4, what="missed grows")
        assert count == 3
        assert await _state(reader, "mute-1") == "stale"
        # The fleet's series counts the same beats.
        fleet_count, fleet_missed = await _figures(reader, "/api/fleet/heartbeats")
        assert fleet_count == 3
        assert fleet_missed >= missed
    finally:
        device.close()


async def _is(client: httpx.AsyncClient, device_id: str, state: str) -> bool:
    return await _state(client, device_id) == state


async def test_a_new_session_after_a_clean_shutdown_owes_nothing_for_the_gap(
    monitor_api: RunningMonitor, reader: httpx.AsyncClient, broker: TestBroker
) -> None:
    device = FakeDevice(broker, "restarting-1")
    presence = "clawbeat/v1/devices/restarting-1/presence"

    async def announce(body: dict[str, str]) -> None:
        await asyncio.to_thread(device.probe.publish, presence, json.dumps(body), retain=True)

    try:
        for _ in range(3):
            await device.beat(interval=INTERVAL)
        await announce({"state": "offline", "session": "s1", "reason": "shutdown"})
        await wait_for(lambda: _is(reader, "restarting-1", "offline"), what="offline")
        # Down for many intervals, then a new session: online first, then heartbeats. The
        # new session announces a long interval, so the test's own pacing misses nothing.
        await asyncio.sleep(8 * INTERVAL)
        device.session, device.seq = "s2", 0
        await announce({"state": "online", "session": "s2"})
        for _ in range(3):
            await device.beat(interval=60.0)
        path = "/api/devices/restarting-1/heartbeats"

        async def all_beats() -> tuple[int, int] | None:
            figures = await _figures(reader, path)
            return figures if figures[0] == 6 else None

        _, missed = await wait_for(all_beats, what="six heartbeats in the rollups")
        assert missed == 0
        assert await _state(reader, "restarting-1") == "online"
    finally:
        device.close()

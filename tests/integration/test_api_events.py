"""The live event stream (server-sent events) that feeds the dashboard."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.harness.api import FakeDevice, RunningMonitor, running_monitor, wait_for
from tests.harness.mosquitto import TestBroker

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    kind, data = "", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and kind:
            yield kind, json.loads(data)
            kind, data = "", ""


async def test_stream_sends_a_summary_then_each_transition_as_it_happens(
    monitor_api: RunningMonitor, broker: TestBroker
) -> None:
    device = FakeDevice(broker, "pump-4")
    async with (
        monitor_api.client(timeout=httpx.Timeout(20)) as client,
        client.stream("GET", "/api/events", params={"token": monitor_api.read_token}) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["cache-control"] == "no-cache"
        events = _events(stream)
        kind, first = await anext(events)
        assert kind == "summary"
        assert first["total"] == 0
        assert first["broker_connected"] is True

        await wait_for(lambda: monitor_api.service.events.subscribers == 1, what="subscribed")
        await device.beat(interval=0.2)
        seen: list[tuple[str | None, str, str]] = []
        summaries = 0
        async for kind, body in events:
            if kind == "summary":
                summaries += 1
                continue
            assert kind == "transition"
            assert body["device"] == "pump-4"
            assert body["interval"] == 0.2
            assert body["class"] == "default"
            assert body["at"].endswith("Z")
            seen.append((body["old"], body["new"], body["reason"]))
            if body["new"] == "stale":
                break
        assert seen == [
            (None, "online", "first-seen"),
            ("online", "late", "missed-heartbeats"),
            ("late", "stale", "stopped-beating"),
        ]
        assert summaries >= 1  # one per summary interval (1 s here)
    device.close()
    await wait_for(
        lambda: monitor_api.service.events.subscribers == 0, what="the stream unsubscribed"
    )


async def test_stream_with_a_header_token_and_without_any(monitor_api: RunningMonitor) -> None:
    async with (
        monitor_api.reader() as reader,
        reader.stream("GET", "/api/events") as stream,
    ):
        assert stream.status_code == 200
        kind, _ = await anext(_events(stream))
        assert kind == "summary"
    async with monitor_api.client() as anonymous:
        refused = await anonymous.get("/api/events", params={"token": "cbt_wrong"})
        assert refused.status_code == 401


async def test_an_open_stream_does_not_hold_up_a_stop(
    broker: TestBroker, database_url: str
) -> None:
    async with running_monitor(broker, database_url) as monitor:
        client = monitor.client(timeout=httpx.Timeout(20))
        stream_cm = client.stream("GET", "/api/events", params={"token": monitor.read_token})
        stream = await stream_cm.__aenter__()
        events = _events(stream)
        assert (await anext(events))[0] == "summary"
        started = time.monotonic()
        monitor.service.request_stop()
        # The server ends the stream as it shuts down: the client sees its end.
        async for _ in events:
            pass
        assert await monitor.task == 0
        assert time.monotonic() - started < 8
        await stream_cm.__aexit__(None, None, None)
        await client.aclose()

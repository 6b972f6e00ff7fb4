"""The live event hub: fan-out, slow subscribers, shutdown."""

from __future__ import annotations

import asyncio
import json

import pytest

from monitor.live_events import EventHub

pytestmark = pytest.mark.anyio


def _decode(chunk: bytes) -> tuple[str, dict[str, object]]:
    fields = dict(line.split(": ", 1) for line in chunk.decode().strip().splitlines())
    return fields["event"], json.loads(fields["data"])


async def test_every_subscriber_gets_every_event_in_order() -> None:
    hub = EventHub()
    subs = [hub.subscribe(), hub.subscribe()]
    hub.publish("transition", {"device": "a"})
    hub.publish("transition", {"device": "b"})
    for sub in subs:
        got = [sub.queue.get_nowait(), sub.queue.get_nowait()]
        assert [e.data["device"] for e in got] == ["a", "b"]
        assert got[0].id < got[1].id


async def test_publishing_with_no_subscribers_costs_nothing() -> None:
    hub = EventHub()
    hub.publish("transition", {"device": "a"})
    assert hub.subscribers == 0


async def test_a_subscriber_that_falls_behind_gets_one_resync_instead() -> None:
    hub = EventHub(queue_limit=3)
    slow = hub.subscribe()
    for i in range(10):
        hub.publish("transition", {"device": str(i)})
    kinds = []
    while not slow.queue.empty():
        kinds.append(slow.queue.get_nowait().kind)
    assert "resync" in kinds
    assert len(kinds) <= 3


async def test_stream_starts_with_retry_and_first_event_and_ends_on_close() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    stream = hub.stream(sub, keepalive=0.05)
    assert await anext(stream) == b"retry: 2000\n\n"
    hub.publish("summary", {"total": 3})
    assert _decode(await anext(stream)) == ("summary", {"total": 3})
    assert await anext(stream) == b": keepalive\n\n"
    hub.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 1)
    assert hub.subscribers == 0

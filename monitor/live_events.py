"""Live events for dashboards: transitions and fleet summaries, fanned out to the web's
SSE streams. The service publishes; the web subscribes.

The service calls :meth:`EventHub.publish` from the event loop for every transition
(cheap: a dict per subscriber, nothing at all when nobody listens). Each subscriber
has a bounded queue. A subscriber that cannot keep up (a mass outage produces a
transition per device) is not slowed down for, nor is memory spent on it: its queue is
emptied and replaced by one ``resync`` event, on which the dashboard reloads what it
shows from the API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.liveness.snapshot import DeviceSnapshot
from monitor.liveness.states import Transition
from monitor.timefmt import iso

QUEUE_LIMIT: Final = 1_000
KEEPALIVE_SECONDS: Final = 15.0


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str
    data: Mapping[str, Any]
    id: int

    def encode(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n".encode()


_CLOSE: Final = LiveEvent("close", {}, 0)


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[LiveEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    dropped: int = 0


class EventHub:
    def __init__(self, *, queue_limit: int = QUEUE_LIMIT) -> None:
        self._subscribers: set[Subscription] = set()
        self._next_id = 1
        self._queue_limit = queue_limit
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, data: Mapping[str, Any]) -> None:
        if not self._subscribers:
            return
        event = LiveEvent(kind, data, self._next_id)
        self._next_id += 1
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1
                _drain(sub.queue)
                sub.queue.put_nowait(LiveEvent("resync", {"dropped": sub.dropped}, event.id))

    def subscribe(self) -> Subscription:
        sub = Subscription(asyncio.Queue(self._queue_limit))
        if self._closed:
            sub.queue.put_nowait(_CLOSE)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self._closed = True
        for sub in self._subscribers:
            _drain(sub.queue)
            sub.queue.put_nowait(_CLOSE)

    async def stream(
        self,
        sub: Subscription,
        *,
        first: LiveEvent | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> AsyncIterator[bytes]:
        """SSE bytes for ``sub`` until the hub closes; a comment line keeps proxies open."""
        try:
            # Tell EventSource to retry after 2 s if the connection drops.
            yield b"retry: 2000\n\n"
            if first is not None:
                yield first.encode()
            while True:
                try:
                    async with asyncio.timeout(keepalive):
                        event = await sub.queue.get()
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is _CLOSE:
                    return
                yield event.encode()
        finally:
            self.unsubscribe(sub)


def _drain(queue: asyncio.Queue[LiveEvent]) -> None:
    while not queue.empty():
        queue.get_nowait()


def transition_event(tr: Transition, snap: DeviceSnapshot | None) -> dict[str, Any]:
    """The ``transition`` event body: the transition plus the device's status now."""
    return {
        "device": tr.device_id,
        "old": tr.old.value if tr.old is not None else None,
        "new": tr.new.value,
        "reason": tr.reason.value,
        "at": iso(tr.at_wall),
        "session": tr.session,
        "class": snap.device_class if snap is not None else None,
        "last_seen": iso(snap.last_seen_wall) if snap is not None else None,
        "interval": snap.effective_interval if snap is not None else None,
    }

"""From messages on source topics to engine events: route, decode, resolve, count.

The shell's counterpart of ``monitor/ingest.py`` for the conventions in this package:
each message goes to the first source whose filters match it, its events are resolved
(``resolve.py``) and handed to the same sink protocol v1 uses, so warm-up, blind mode,
will hold and sessions apply alike. Bad input is never an exception that escapes: it is
counted per source and reason, logged (rate-limited) and dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from device_client.protocol import Heartbeat
from monitor.ingest import IngestSink
from monitor.liveness.outcomes import Outcome
from monitor.logging_setup import RateLimitedLog
from monitor.sources.base import Adapter
from monitor.sources.events import Command, Ignored, Malformed
from monitor.sources.resolve import SessionResolver, SessionView
from monitor.sources.topics import filter_matches

# What the MQTT link calls per message: (topic, payload, retained, monotonic, wall).
MessageHandler = Callable[[str, bytes, bool, float, float], None]

_HEARTBEAT_KEYS: Final = {o: f"heartbeat_{o.value}" for o in Outcome}
_PRESENCE_KEYS: Final = {o: f"presence_{o.value}" for o in Outcome}


class SourceIngest:
    def __init__(
        self,
        adapters: Sequence[Adapter],
        sink: IngestSink,
        view: SessionView,
        logger: logging.Logger,
        *,
        publish: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.adapters = tuple(adapters)
        # Filters computed once: adapters build them from their options on each call.
        self._routes = tuple((a, a.filters) for a in self.adapters)
        self.publish = publish
        self.sink = sink
        self.view = view
        self.resolver = SessionResolver(view)
        self.counts: Counter[str] = Counter()
        """Totals across sources (same keys as protocol v1 ingest)."""
        self.per_source: dict[str, Counter[str]] = {a.name: Counter() for a in self.adapters}
        self._ratelimited = RateLimitedLog(logger)
        # Told after every replace(): route() re-points the link when sources come or go.
        self.on_replace: Callable[[], None] | None = None

    def replace(self, adapters: Sequence[Adapter]) -> None:
        """Route to ``adapters`` from now on (the stored sources changed).

        Session bookkeeping stays, so a device of a source that is kept, or that moves to
        another source, is not taken for a new connection; a removed source's counts go.
        """
        self.adapters = tuple(adapters)
        self._routes = tuple((a, a.filters) for a in self.adapters)
        self.per_source = {a.name: self.per_source.get(a.name, Counter()) for a in self.adapters}
        if self.on_replace is not None:
            self.on_replace()

    @property
    def filters(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for _, filters in self._routes:
            for topic_filter in filters:
                seen.setdefault(topic_filter, None)
        return tuple(seen)

    def handle(self, topic: str, payload: bytes, retained: bool, now: float, wall: float) -> bool:
        """Feed one message; False if no source claims its topic."""
        for adapter, filters in self._routes:
            if not any(filter_matches(f, topic) for f in filters):
                continue
            decoded = adapter.decode(topic, payload, wall=wall, view=self.view)
            if decoded is None:
                continue
            self._count(adapter.name, "received")
            if isinstance(decoded, Malformed):
                self._count(adapter.name, decoded.reason)
                # Keyed by source and reason, not topic: cycling topics can't defeat it.
                self._ratelimited.warning(
                    f"{adapter.name}:{decoded.reason}",
                    "source %s: dropped message on %r: %s",
                    adapter.name,
                    topic[:200],
                    decoded.detail,
                )
                return True
            if isinstance(decoded, Ignored):
                self._count(adapter.name, f"ignored_{decoded.reason}")
                return True
            for event in decoded:
                if isinstance(event, Command):
                    if self.publish is not None:
                        self.publish(event.topic, event.payload)
                        self._count(adapter.name, "command_sent")
                    continue
                device_id, message = self.resolver.resolve(
                    event, interval=adapter.interval, wall=wall, retained=retained
                )
                if isinstance(message, Heartbeat):
                    result = self.sink.heartbeat(
                        device_id, message, retained=retained, now=now, wall=wall
                    )
                    self._count(adapter.name, _HEARTBEAT_KEYS[result.outcome])
                else:
                    result = self.sink.presence(
                        device_id, message, retained=retained, now=now, wall=wall
                    )
                    self._count(adapter.name, _PRESENCE_KEYS[result.outcome])
            return True
        return False

    def _count(self, source: str, key: str) -> None:
        self.counts[key] += 1
        self.per_source[source][key] += 1


def route(
    v1: MessageHandler,
    sources: SourceIngest,
    topic_root: str,
    deliver: Callable[[MessageHandler], None],
) -> None:
    """Have the link (``deliver``) call the right handler now and whenever sources change.

    With sources, protocol v1 topics go to ``v1`` and the rest to the sources. Without
    any, which is the usual monitor, every message is protocol v1's: the link calls
    ``v1`` itself, with no router in between (one call and one prefix test less per
    message). A source stored or removed while the monitor runs re-points the link when
    ``sources.replace`` is called, before the subscriptions change. A message of a
    removed last source still in flight then reaches ``v1``, which drops it as a topic
    outside the protocol.
    """
    prefix = topic_root + "/"

    def routed(topic: str, payload: bytes, retained: bool, now: float, wall: float) -> None:
        if topic.startswith(prefix):
            v1(topic, payload, retained, now, wall)
        elif not sources.handle(topic, payload, retained, now, wall):
            # Overlapping filters (a broad generic rule) can deliver what no source takes.
            sources.counts["unclaimed"] += 1

    current: MessageHandler | None = None

    def point() -> None:
        nonlocal current
        wanted = routed if sources.adapters else v1
        if wanted is not current:
            current = wanted
            deliver(wanted)

    sources.on_replace = point
    point()

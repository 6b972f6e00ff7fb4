"""From raw MQTT messages to engine events: validate, dispatch, count.

Bad input from the network is never an exception that escapes: every malformed,
oversized or hostile message is counted by kind, logged (rate-limited) and dropped.
No MQTT library here — the link hands over topic, payload and flags — so the whole
validation path is unit-testable.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from device_client import protocol
from device_client.protocol import (
    Heartbeat,
    InvalidDeviceId,
    InvalidPayload,
    InvalidTopic,
    MessageKind,
    PayloadTooLarge,
    Presence,
    Topics,
)
from monitor.cluster.partition_topics import parse_partition_topic
from monitor.liveness.outcomes import EventResult, Outcome
from monitor.logging_setup import RateLimitedLog

# Counter keys made once, not formatted per message.
_HEARTBEAT_KEYS: Final = {o: f"heartbeat_{o.value}" for o in Outcome}
_PRESENCE_KEYS: Final = {o: f"presence_{o.value}" for o in Outcome}


class IngestSink(Protocol):
    """What ingest calls with valid messages (the service implements it)."""

    def heartbeat(
        self, device_id: str, hb: Heartbeat, *, retained: bool, now: float, wall: float
    ) -> EventResult: ...

    def presence(
        self, device_id: str, presence: Presence, *, retained: bool, now: float, wall: float
    ) -> EventResult: ...


class ConfigSink(Protocol):
    """What ingest calls with messages on config topics (the service reconciles them).

    Gets the raw payload: an unreadable retained config is something to rewrite, not
    something to drop.
    """

    def __call__(self, device_id: str, payload: bytes, *, retained: bool) -> None: ...


@dataclass
class Ingest:
    topics: Topics
    sink: IngestSink
    logger: logging.Logger
    config: ConfigSink | None = None
    # Messages outside the device tree that the shell takes (the link probe's echo):
    # called with (topic, payload, now), returns True when it took the message. Asked
    # only once a topic failed to parse, so device messages pay nothing for it.
    other: Callable[[str, bytes, float], bool] | None = None
    # The partition count when the broker routes heartbeat and presence to partition
    # topics (CLAWBEAT_PARTITION_TOPICS); None reads {root}/devices/{id}/{kind} only.
    partitions: int | None = None

    def __post_init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._ratelimited = RateLimitedLog(self.logger)
        self._parse: Callable[[str], tuple[str, MessageKind]] = self.topics.parse_device_topic
        if self.partitions is not None:
            self._parse = functools.partial(
                parse_partition_topic, self.topics, partitions=self.partitions
            )

    def handle(self, topic: str, payload: bytes, retained: bool, now: float, wall: float) -> None:
        self.counts["received"] += 1
        try:
            device_id, kind = self._parse(topic)
        except InvalidDeviceId:
            self._drop("bad_device_id", topic, "hostile device id")
            return
        except InvalidTopic:
            if self.other is not None and self.other(topic, payload, now):
                self.counts["received"] -= 1  # not a device message
                return
            self._drop("bad_topic", topic, "topic outside the protocol")
            return
        try:
            if kind is MessageKind.HEARTBEAT:
                if not payload:
                    # A cleared retained heartbeat (a forgotten device's): housekeeping.
                    self.counts["heartbeat_cleared"] += 1
                    return
                result = self.sink.heartbeat(
                    device_id,
                    protocol.decode_heartbeat(payload),
                    retained=retained,
                    now=now,
                    wall=wall,
                )
                self.counts[_HEARTBEAT_KEYS[result.outcome]] += 1
            elif kind is MessageKind.PRESENCE:
                if not payload:
                    # A cleared retained presence (zero-length publish) is housekeeping.
                    self.counts["presence_cleared"] += 1
                    return
                result = self.sink.presence(
                    device_id,
                    protocol.decode_presence(payload),
                    retained=retained,
                    now=now,
                    wall=wall,
                )
                self.counts[_PRESENCE_KEYS[result.outcome]] += 1
            elif self.config is not None:
                # Config topics are the monitor's own writes, read back to reconcile
                # what the broker retained with what the database wants.
                self.counts["config_received"] += 1
                self.config(device_id, payload, retained=retained)
            else:
                self.counts["config_ignored"] += 1
        except PayloadTooLarge as exc:
            self._drop("oversized", topic, str(exc))
        except (InvalidPayload, InvalidDeviceId) as exc:
            self._drop("invalid_payload", topic, str(exc))

    def _drop(self, kind: str, topic: str, why: str) -> None:
        self.counts[kind] += 1
        # Keyed by kind, not topic: a device cycling hostile topics can't defeat the limit.
        self._ratelimited.warning(kind, "dropped message on %r: %s", topic[:200], why)

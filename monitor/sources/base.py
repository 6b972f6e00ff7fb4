"""What every source adapter provides, and the payload helpers they share."""

from __future__ import annotations

from typing import Any, Final, Protocol

import orjson

from device_client.protocol import MAX_METRICS_DEPTH, MAX_PAYLOAD_BYTES
from monitor.sources.events import Decoded, Malformed
from monitor.sources.resolve import SessionView

# Larger than protocol v1's 4 KiB: a Tasmota STATE or a Sparkplug birth with its metric
# definitions is bigger, and the broker's own max_packet_size caps it anyway.
MAX_SOURCE_PAYLOAD: Final = 256 * 1024


class Adapter(Protocol):
    """Turns one convention's messages into liveness events. Pure: time is passed in."""

    @property
    def name(self) -> str:
        """The source's name, as declared (counters and logs use it)."""
        ...

    @property
    def interval(self) -> float:
        """Expected seconds between a device's messages when the message does not say."""
        ...

    @property
    def filters(self) -> tuple[str, ...]:
        """Topic filters the monitor subscribes to for this source."""
        ...

    def decode(
        self, topic: str, payload: bytes, *, wall: float, view: SessionView
    ) -> Decoded | None:
        """Events for a message on one of ``filters``; None if the topic is not ours.

        Never raises for bad input: a malformed message is a :class:`Malformed`.
        """
        ...


def too_large(payload: bytes) -> Malformed | None:
    if len(payload) > MAX_SOURCE_PAYLOAD:
        return Malformed("oversized", f"payload of {len(payload)} bytes")
    return None


def json_object(payload: bytes) -> dict[str, Any] | Malformed:
    """The payload as a JSON object, or why it is not one."""
    big = too_large(payload)
    if big is not None:
        return big
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Malformed("invalid_payload", f"not JSON ({exc})")
    if not isinstance(obj, dict):
        return Malformed("invalid_payload", "not a JSON object")
    return obj


def word(payload: bytes, limit: int = 64) -> str | None:
    """A short text payload, stripped and lower-cased; None if it is not short text."""
    if len(payload) > limit:
        return None
    try:
        return payload.decode("utf-8").strip().lower()
    except UnicodeDecodeError:
        return None


def split_under(topic: str, root: str) -> list[str] | None:
    """The levels of ``topic`` below ``root`` (``""``: the whole topic), or None."""
    if not root:
        return topic.split("/")
    if not topic.startswith(root + "/"):
        return None
    return topic[len(root) + 1 :].split("/")


def as_metrics(obj: dict[str, Any], payload: bytes) -> dict[str, Any] | None:
    """``obj`` as a device's latest metrics, if it is as small and shallow as protocol v1
    allows (so it can be stored and shown); else None: still a beat, just not kept."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_METRICS_DEPTH:
            return None
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return obj

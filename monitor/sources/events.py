"""What a source adapter makes of one message: liveness events, or why it made none.

Adapters speak in the terms of their convention; these events are the common ground.
``session`` and ``seq`` are None where the convention has none: the
:class:`~monitor.sources.resolve.SessionResolver` then supplies the best the data allows
(see its rules) before the events reach the liveness engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Beat:
    """Evidence of life: the device sent something of its own."""

    device_id: str
    session: str | None = None
    seq: int | None = None
    ts: float | None = None
    """The device's own timestamp, UTC epoch seconds (latency only, never a verdict)."""
    interval: float | None = None
    """An interval the message announces; None: the source's expected interval."""
    metrics: dict[str, Any] | None = None
    """What the device reported, kept as its latest metrics (small JSON objects only)."""


@dataclass(frozen=True, slots=True)
class Online:
    """A birth: the device (re)connected."""

    device_id: str
    session: str | None = None


@dataclass(frozen=True, slots=True)
class Offline:
    """A death: a will (connection lost) or an announced shutdown."""

    device_id: str
    session: str | None = None
    shutdown: bool = False


SourceEvent = Beat | Online | Offline


@dataclass(frozen=True, slots=True)
class Command:
    """A message the monitor should publish in reply (a Sparkplug rebirth request)."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message on a topic of the convention that breaks its format: counted, dropped."""

    reason: str
    """Counter key: ``invalid_payload``, ``bad_device_id``, ``oversized``, ..."""
    detail: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid message that says nothing about liveness (a command, bridge logging)."""

    reason: str


Decoded = tuple[SourceEvent | Command, ...] | Malformed | Ignored

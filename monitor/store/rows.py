"""Plain values the shell hands to the store and gets back.

No SQLAlchemy here: the liveness shell builds these without touching the ORM, and the
write-behind writer can hold a million of them cheaply (``slots``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from monitor.liveness.policy import DEFAULT_GRACE, DEFAULT_LOST_AFTER, DEFAULT_MISSED_LIMIT


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """The runtime state of one device, as the monitor knows it now.

    ``fw`` and ``latest_metrics`` left as ``None`` keep the stored values (a presence
    message carries neither). ``first_seen`` is when the monitor first saw the device;
    it is only used when the row is new, and defaults to the flush time.
    """

    id: str
    state: str
    since: datetime
    reason: str | None = None
    session: str | None = None
    last_seq: int | None = None
    last_seen: datetime | None = None
    announced_interval: float | None = None
    clock_offset: float | None = None
    fw: str | None = None
    latest_metrics: Mapping[str, Any] | None = None
    first_seen: datetime | None = None


def superseding(newer: DeviceRow, older: DeviceRow | None) -> DeviceRow:
    """``newer``, replacing ``older`` before either was written.

    The newer state wins, but the earliest ``first_seen`` stays: a device first seen
    in one flush window and seen again before the row reached the database (a slow or
    unavailable database) was still first seen then.
    """
    if older is None or older.first_seen is None:
        return newer
    if newer.first_seen is not None and newer.first_seen <= older.first_seen:
        return newer
    return replace(newer, first_seen=older.first_seen)


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One state change. ``uid`` makes retried inserts idempotent."""

    device_id: str
    old_state: str | None
    new_state: str
    at: datetime
    reason: str | None = None
    session: str | None = None
    uid: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(slots=True)
class RollupRow:
    """Heartbeat figures for one device and one minute, to be added to what is stored."""

    device_id: str
    minute: datetime
    count: int = 0
    missed: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float | None = None
    jitter_count: int = 0
    jitter_sum_ms: float = 0.0
    jitter_max_ms: float | None = None

    def merge(self, other: RollupRow) -> None:
        """Add ``other`` (same device and minute) into this row."""
        add_figures(self, other)

    def add_sample(
        self, *, count: int, missed: int, latency_ms: float | None, jitter_ms: float | None
    ) -> None:
        """Add one heartbeat's figures in place (no allocation: this is per heartbeat)."""
        self.count += count
        self.missed += missed
        if latency_ms is not None:
            self.latency_count += 1
            self.latency_sum_ms += latency_ms
            self.latency_max_ms = _max(self.latency_max_ms, latency_ms)
        if jitter_ms is not None:
            self.jitter_count += 1
            self.jitter_sum_ms += jitter_ms
            self.jitter_max_ms = _max(self.jitter_max_ms, jitter_ms)


class HeartbeatFigures(Protocol):
    """The additive heartbeat figures a rollup row, a chart minute and a bucket share."""

    count: int
    missed: int
    latency_count: int
    latency_sum_ms: float
    latency_max_ms: float | None
    jitter_count: int
    jitter_sum_ms: float
    jitter_max_ms: float | None


def add_figures(into: HeartbeatFigures, other: HeartbeatFigures) -> None:
    """Add ``other``'s figures into ``into``: sums add, maxima take the larger."""
    into.count += other.count
    into.missed += other.missed
    into.latency_count += other.latency_count
    into.latency_sum_ms += other.latency_sum_ms
    into.latency_max_ms = _max(into.latency_max_ms, other.latency_max_ms)
    into.jitter_count += other.jitter_count
    into.jitter_sum_ms += other.jitter_sum_ms
    into.jitter_max_ms = _max(into.jitter_max_ms, other.jitter_max_ms)


@dataclass(frozen=True, slots=True)
class StoredDevice:
    """What the monitor needs of each device to rebuild its state at startup."""

    id: str
    state: str
    since: datetime
    reason: str | None
    session: str | None
    last_seq: int | None
    last_seen: datetime | None
    announced_interval: float | None
    interval_override: float | None
    class_name: str
    in_maintenance: bool
    clock_offset: float | None = None


@dataclass(frozen=True, slots=True)
class ClassSpec:
    """The settable fields of a device class (see :class:`monitor.store.models.DeviceClass`)."""

    name: str
    interval: float | None = None
    grace: float = DEFAULT_GRACE
    missed_limit: int = DEFAULT_MISSED_LIMIT
    lost_after: float | None = DEFAULT_LOST_AFTER
    description: str = ""


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)

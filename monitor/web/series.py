"""Heartbeat charts from per-minute rollups: fixed buckets, pure arithmetic.

A range is cut into equal buckets (1 h: 60 x 1 min; 24 h: 96 x 15 min; 7 d: 168 x 1 h),
so a chart has the same number of points whatever the traffic. Minutes without rows
are buckets with zero heartbeats and no latency figure (``None``), which is what a
chart must show for silence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from monitor.store.reports import add_figures


class Range(StrEnum):
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"


SPANS: Final = {Range.HOUR: (3_600, 60), Range.DAY: (86_400, 900), Range.WEEK: (604_800, 3_600)}
"""Range -> (seconds covered, seconds per bucket)."""


@dataclass(slots=True)
class MinuteFigures:
    """Heartbeat rollups of one minute (one device's, or added up over a fleet)."""

    minute: float  # epoch seconds at the start of the minute
    count: int = 0
    missed: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float | None = None
    jitter_count: int = 0
    jitter_sum_ms: float = 0.0
    jitter_max_ms: float | None = None


@dataclass(slots=True)
class Bucket:
    start: float
    seconds: int
    count: int = 0
    missed: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float | None = None
    jitter_count: int = 0
    jitter_sum_ms: float = 0.0
    jitter_max_ms: float | None = None

    @property
    def per_minute(self) -> float:
        return self.count * 60.0 / self.seconds

    @property
    def latency_avg_ms(self) -> float | None:
        return self.latency_sum_ms / self.latency_count if self.latency_count else None

    @property
    def jitter_avg_ms(self) -> float | None:
        return self.jitter_sum_ms / self.jitter_count if self.jitter_count else None


@dataclass(slots=True)
class Series:
    range: Range
    start: float
    end: float
    bucket_seconds: int
    buckets: list[Bucket] = field(default_factory=list)


def window(rng: Range, now: float) -> tuple[float, float, int]:
    """``(start, end, bucket_seconds)``: ``end`` is ``now`` rounded up to a whole bucket."""
    span, step = SPANS[rng]
    end = (int(now) // step + 1) * step
    return float(end - span), float(end), step


def bucketize(rng: Range, now: float, minutes: Iterable[MinuteFigures]) -> Series:
    start, end, step = window(rng, now)
    count = int((end - start) // step)
    series = Series(rng, start, end, step, [Bucket(start + i * step, step) for i in range(count)])
    for m in minutes:
        index = int((m.minute - start) // step)
        if not 0 <= index < count:
            continue
        add_figures(series.buckets[index], m)
    return series

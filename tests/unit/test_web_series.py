"""Heartbeat chart buckets from per-minute rollups."""

from __future__ import annotations

import pytest

from monitor.web.series import MinuteFigures, Range, bucketize, window

NOW = 1_800_000_000.0 + 30.5  # 30.5 s into a minute


@pytest.mark.parametrize(
    ("rng", "buckets", "step"),
    [(Range.HOUR, 60, 60), (Range.DAY, 96, 900), (Range.WEEK, 168, 3600)],
)
def test_each_range_has_a_fixed_number_of_buckets_ending_after_now(
    rng: Range, buckets: int, step: int
) -> None:
    start, end, got_step = window(rng, NOW)
    assert got_step == step
    assert (end - start) / step == buckets
    assert end - step <= NOW < end
    assert len(bucketize(rng, NOW, []).buckets) == buckets


def test_minutes_are_added_up_into_their_bucket() -> None:
    start, _, _ = window(Range.DAY, NOW)
    minutes = [
        MinuteFigures(start + 60, count=60, missed=1, latency_count=60, latency_sum_ms=600.0,
                      latency_max_ms=30.0, jitter_count=59, jitter_sum_ms=118.0, jitter_max_ms=9.0),
        MinuteFigures(start + 120, count=30, missed=3, latency_count=30, latency_sum_ms=900.0,
                      latency_max_ms=80.0),
    ]  # fmt: skip
    first = bucketize(Range.DAY, NOW, minutes).buckets[0]
    assert (first.count, first.missed) == (90, 4)
    assert first.per_minute == pytest.approx(90 / 15)
    assert first.latency_avg_ms == pytest.approx(1500 / 90)
    assert first.latency_max_ms == 80.0
    assert first.jitter_avg_ms == pytest.approx(2.0)
    assert first.jitter_max_ms == 9.0


def test_silent_buckets_are_zero_with_no_timing_figures() -> None:
    bucket = bucketize(Range.HOUR, NOW, []).buckets[5]
    assert (bucket.count, bucket.missed) == (0, 0)
    assert bucket.latency_avg_ms is None
    assert bucket.jitter_avg_ms is None


def test_minutes_outside_the_range_are_dropped() -> None:
    start, end, _ = window(Range.HOUR, NOW)
    series = bucketize(
        Range.HOUR, NOW, [MinuteFigures(start - 60, count=5), MinuteFigures(end, count=7)]
    )
    assert sum(b.count for b in series.buckets) == 0

"""Turning stored rows and live engine snapshots into API bodies.

The database row carries what operators set (class, tags, override) and what was last
flushed; the engine's snapshot is the live truth for state, since, last_seen and the
interval being enforced. Where both exist the engine wins for those fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monitor.liveness.clock import skewed
from monitor.liveness.snapshot import DeviceSnapshot
from monitor.state_rows import parse_reason, parse_state
from monitor.store.reports import Device, TransitionRecord
from monitor.timefmt import to_datetime
from monitor.web.schemas import DeviceOut, PointOut, SeriesOut, TransitionOut
from monitor.web.series import MinuteFigures, Range, bucketize


def device_out(row: Device | None, live: DeviceSnapshot | None) -> DeviceOut:
    """One device from its row and/or its live snapshot (at least one must be given)."""
    if row is None:
        assert live is not None
        since = to_datetime(live.since_wall)
        assert since is not None
        return DeviceOut(
            id=live.device_id,
            state=live.state,
            since=since,
            reason=live.reason,
            session=live.session,
            last_seen=to_datetime(live.last_seen_wall),
            last_seq=live.last_seq,
            class_name=live.device_class,
            interval=live.effective_interval,
            interval_override=live.override_interval,
            announced_interval=live.announced_interval,
            maintenance=live.in_maintenance,
            confirmed=live.confirmed,
            clock_offset=live.clock_offset,
            clock_skewed=skewed(live.clock_offset),
        )
    out = DeviceOut(
        id=row.id,
        state=parse_state(row.state),
        since=row.since,
        reason=parse_reason(row.reason),
        session=row.session,
        last_seen=row.last_seen,
        last_seq=row.last_seq,
        class_name=row.class_name,
        interval=None,
        interval_override=row.interval_override,
        announced_interval=row.announced_interval,
        tags=list(row.tags or []),
        maintenance=row.in_maintenance,
        fw=row.fw,
        first_seen=row.first_seen,
        clock_offset=row.clock_offset,
        clock_skewed=skewed(row.clock_offset),
    )
    if live is not None:
        since = to_datetime(live.since_wall)
        assert since is not None
        out.state = live.state
        out.since = since
        out.reason = live.reason
        out.session = live.session
        out.last_seen = to_datetime(live.last_seen_wall)
        out.last_seq = live.last_seq
        out.interval = live.effective_interval
        out.announced_interval = live.announced_interval
        out.confirmed = live.confirmed
        out.clock_offset = live.clock_offset
        out.clock_skewed = skewed(live.clock_offset)
    return out


def transition_out(row: TransitionRecord) -> TransitionOut:
    return TransitionOut(
        at=row.at,
        old_state=row.old_state,
        new_state=row.new_state,
        reason=row.reason,
        session=row.session,
    )


def series_out(rng: Range, now: float, minutes: Iterable[MinuteFigures]) -> SeriesOut:
    series = bucketize(rng, now, minutes)
    return SeriesOut(
        range=rng,
        start=_dt(series.start),
        end=_dt(series.end),
        bucket_seconds=series.bucket_seconds,
        points=[
            PointOut(
                t=_dt(b.start),
                count=b.count,
                per_minute=round(b.per_minute, 3),
                missed=b.missed,
                latency_avg_ms=_round(b.latency_avg_ms),
                latency_max_ms=_round(b.latency_max_ms),
                jitter_avg_ms=_round(b.jitter_avg_ms),
                jitter_max_ms=_round(b.jitter_max_ms),
            )
            for b in series.buckets
        ],
    )


def _dt(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, UTC)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def newest_first(rows: Sequence[TransitionRecord]) -> list[TransitionOut]:
    return [transition_out(r) for r in rows]

"""Conversions between the engine's values and the store's rows.

The engine speaks floats (UTC epoch seconds) and enums; the store speaks aware datetimes
and strings. Keeping the mapping in one place keeps both sides free of the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.liveness.policy import Policy
from monitor.liveness.snapshot import DeviceSnapshot
from monitor.liveness.states import Reason, State, Transition
from monitor.store.models import DeviceClass
from monitor.store.rows import DeviceRow, StoredDevice, TransitionRow
from monitor.timefmt import from_datetime, to_datetime

# A class whose lost_after is NULL never marks devices lost; the engine wants a number.
NEVER = 100 * 365 * 86_400.0


def policy_from_class(cls: DeviceClass) -> Policy:
    return Policy(
        interval=cls.interval,
        grace=cls.grace,
        missed_limit=cls.missed_limit,
        lost_after=cls.lost_after if cls.lost_after is not None else NEVER,
    )


def parse_state(value: str) -> State:
    """A stored state; an unknown word (newer schema, manual edit) reads as unknown."""
    try:
        return State(value)
    except ValueError:
        return State.UNKNOWN


def parse_reason(value: str | None) -> Reason | None:
    if value is None:
        return None
    try:
        return Reason(value)
    except ValueError:
        return None


def engine_snapshot(stored: StoredDevice) -> DeviceSnapshot:
    since = from_datetime(stored.since)
    return DeviceSnapshot(
        device_id=stored.id,
        state=parse_state(stored.state),
        since_wall=since if since is not None else 0.0,
        reason=parse_reason(stored.reason),
        session=stored.session,
        last_seq=stored.last_seq,
        last_seen_wall=from_datetime(stored.last_seen),
        announced_interval=stored.announced_interval,
        override_interval=stored.interval_override,
        device_class=stored.class_name,
        in_maintenance=stored.in_maintenance,
        clock_offset=stored.clock_offset,
    )


def device_row(
    snap: DeviceSnapshot,
    fw: str | None,
    metrics: Mapping[str, Any] | None,
    *,
    first_seen: float | None = None,
) -> DeviceRow:
    since = to_datetime(snap.since_wall)
    assert since is not None
    return DeviceRow(
        id=snap.device_id,
        state=snap.state.value,
        since=since,
        reason=snap.reason.value if snap.reason else None,
        session=snap.session,
        last_seq=snap.last_seq,
        last_seen=to_datetime(snap.last_seen_wall),
        announced_interval=snap.announced_interval,
        clock_offset=snap.clock_offset,
        # PostgreSQL text cannot hold NUL; the protocol does not forbid one in fw, and a
        # row the database refuses is dropped (and costs its batch a row-by-row retry).
        fw=fw.replace("\x00", "\ufffd") if fw else fw,
        latest_metrics=metrics,
        first_seen=to_datetime(first_seen),
    )


def transition_row(tr: Transition) -> TransitionRow:
    at = to_datetime(tr.at_wall)
    assert at is not None
    return TransitionRow(
        device_id=tr.device_id,
        old_state=tr.old.value if tr.old else None,
        new_state=tr.new.value,
        at=at,
        reason=tr.reason.value,
        session=tr.session,
    )


def rollup_minute(wall: float) -> datetime:
    return datetime.fromtimestamp(wall - wall % 60, UTC)

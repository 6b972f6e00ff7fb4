"""Read endpoints that keep dashboards current: live device figures, recent transitions.

A device that keeps beating never transitions, so the event stream (transitions and
summaries only: one event per heartbeat would not scale to a fleet) says nothing about
its ``last_seen``. Pages ask :func:`live_devices` for the rows they show instead: it
reads the running engine (no database), so polling it every second is cheap. In
cluster mode a replica's engine is the live truth only for the partitions it acts for;
the others' devices are read from the database, which their owners write (within a
flush window), so every replica answers for the whole fleet. Its ``at`` is the
monitor's clock, against which pages compute "3 s ago" (a browser's own clock may be
off).

:func:`recent_transitions` fills a page's live-events panel when it opens, from the
transitions table; the stream carries what happens after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from monitor.liveness.states import Reason, State
from monitor.state_rows import parse_reason, parse_state
from monitor.store import reports
from monitor.timefmt import to_datetime
from monitor.web.auth import Reader
from monitor.web.deps import READ_ERRORS, Service
from monitor.web.schemas import DeviceId, OutModel

router = APIRouter(prefix="/api", responses=READ_ERRORS, tags=["read"])

MAX_IDS = 200


class LiveDeviceOut(OutModel):
    id: str
    state: State
    since: datetime
    reason: Reason | None
    session: str | None
    last_seen: datetime | None = Field(description="Last fresh heartbeat received")
    last_seq: int | None
    interval: float | None = Field(description="Seconds expected between heartbeats")
    maintenance: bool
    confirmed: bool


class LiveOut(OutModel):
    at: datetime = Field(description="The monitor's clock when this was read")
    items: list[LiveDeviceOut] = Field(description="The devices asked for that it tracks")


class FleetTransitionOut(OutModel):
    device: str
    at: datetime
    old_state: str | None
    new_state: str
    reason: str | None
    session: str | None


@router.get(
    "/live",
    response_model=LiveOut,
    summary="Live state and last heartbeat of the devices named, from the running engine",
    description="For pages that show a few devices and must stay current while they "
    "beat (the event stream carries transitions only). Reads memory, not the database; "
    "in cluster mode, devices of partitions another replica owns are read from the "
    "database (as their owner last flushed them). Devices nobody tracks are left out.",
)
async def live_devices(
    service: Service,
    _: Reader,
    ids: Annotated[
        list[DeviceId],
        Query(alias="id", min_length=1, max_length=MAX_IDS, description="Device ids"),
    ],
) -> LiveOut:
    asked = list(dict.fromkeys(ids))  # each once, in the order asked
    found: dict[str, LiveDeviceOut] = {}
    for device_id in asked:
        snap = service.live_snapshot(device_id)
        if snap is None:
            continue
        since = to_datetime(snap.since_wall)
        assert since is not None
        found[device_id] = LiveDeviceOut(
            id=snap.device_id,
            state=snap.state,
            since=since,
            reason=snap.reason,
            session=snap.session,
            last_seen=to_datetime(snap.last_seen_wall),
            last_seq=snap.last_seq,
            interval=snap.effective_interval,
            maintenance=snap.in_maintenance,
            confirmed=snap.confirmed,
        )
    elsewhere = [d for d in asked if d not in found and not service.acts_for(d)]
    if elsewhere:
        async with service.sessions() as session:
            for row in await reports.devices_by_ids(session, ids=elsewhere):
                found[row.id] = _stored_live(row)
    return LiveOut(at=datetime.now(UTC), items=[found[d] for d in asked if d in found])


def _stored_live(row: reports.Device) -> LiveDeviceOut:
    return LiveDeviceOut(
        id=row.id,
        state=parse_state(row.state),
        since=row.since,
        reason=parse_reason(row.reason),
        session=row.session,
        last_seen=row.last_seen,
        last_seq=row.last_seq,
        interval=row.interval_override or row.announced_interval,
        maintenance=row.in_maintenance,
        confirmed=False,  # as stored by its owner, not heard by this replica
    )


@router.get(
    "/transitions",
    response_model=list[FleetTransitionOut],
    summary="The fleet's most recent transitions, newest first",
    description="From the transitions table, which trails the monitor by at most one "
    "flush window; the event stream carries transitions as they happen.",
)
async def recent_transitions(
    service: Service,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[FleetTransitionOut]:
    async with service.sessions() as session:
        rows = await reports.list_transitions(session, limit=limit, newest_first=True)
    return [
        FleetTransitionOut(
            device=r.device_id,
            at=r.at,
            old_state=r.old_state,
            new_state=r.new_state,
            reason=r.reason,
            session=r.session,
        )
        for r in rows
    ]

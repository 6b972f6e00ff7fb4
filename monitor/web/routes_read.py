"""Read endpoints (a ``read`` token is enough): devices, history, charts, fleet, classes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from monitor.live_events import LiveEvent
from monitor.liveness.states import State
from monitor.store import reports
from monitor.store.reports import DeviceClass, DeviceFilter, DeviceSort
from monitor.timefmt import to_datetime
from monitor.web.auth import Reader, StreamReader
from monitor.web.deps import NOT_FOUND, READ_ERRORS, ClassPath, DevicePath, Service
from monitor.web.risk_view import with_risk
from monitor.web.schemas import (
    ID_PATTERN,
    TAG_PATTERN,
    ClassOut,
    DeviceDetail,
    DevicePage,
    MeOut,
    SeriesOut,
    SummaryOut,
    TransitionPage,
    UptimeOut,
)
from monitor.web.series import MinuteFigures, Range, window
from monitor.web.uptime import uptime
from monitor.web.views import device_out, series_out, transition_out

router = APIRouter(prefix="/api", responses=READ_ERRORS)

UptimeWindow = Literal["24h", "7d", "30d"]
UPTIME_WINDOWS: Final[tuple[tuple[UptimeWindow, int], ...]] = (("24h", 1), ("7d", 7), ("30d", 30))
TIMELINE_LENGTH: Final = 50
MAX_OFFSET: Final = 1_000_000_000


@router.get("/me", response_model=MeOut, summary="Who the token belongs to")
async def me(principal: Reader) -> MeOut:
    return MeOut(name=principal.name, scope=principal.scope)


@router.get(
    "/summary",
    response_model=SummaryOut,
    summary="Devices per state, live from the running monitor",
    description="The whole fleet from any replica: alone, the running engine's counts; "
    "in cluster mode the database's, re-read every summary interval (5 s by default).",
)
async def summary(service: Service, _: Reader) -> SummaryOut:
    return summary_of(service)


def summary_of(service: Service) -> SummaryOut:
    engine = service.engine
    counts = service.fleet_counts()
    full = {state: counts.get(state, 0) for state in State}
    started = to_datetime(service.started_wall)
    assert started is not None
    return SummaryOut(
        total=sum(full.values()),
        counts=full,
        at=datetime.now(UTC),
        broker_connected=service.link is not None and service.link.connected,
        warming_up=engine is not None and engine.warming_up,
        instance=service.instance,
        started_at=started,
    )


@router.get(
    "/devices",
    response_model=DevicePage,
    summary="List devices with filters, sorting and pagination",
    description="Filtering and sorting use the stored state, which trails the live state "
    "by at most one flush window (1 s by default); the returned items carry the live "
    "state.",
)
async def list_devices(
    *,
    service: Service,
    _: Reader,
    state: Annotated[State | None, Query(description="Only devices in this state")] = None,
    class_name: Annotated[
        str | None, Query(alias="class", pattern=ID_PATTERN, description="Only this class")
    ] = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN, description="Only with tag")] = None,
    q: Annotated[
        str | None,
        Query(max_length=64, description="Case-insensitive text in the id or firmware"),
    ] = None,
    maintenance: Annotated[bool | None, Query()] = None,
    sort: Annotated[DeviceSort, Query()] = DeviceSort.ID,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    limit: Annotated[int, Query(ge=1, le=1_000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> DevicePage:
    flt = DeviceFilter(
        state=state.value if state is not None else None,
        class_name=class_name,
        tag=tag,
        text=q or None,
        maintenance=maintenance,
    )
    async with service.sessions() as session:
        total, rows = await reports.page_devices(
            session, flt=flt, sort=sort, descending=order == "desc", limit=limit, offset=offset
        )
    report = service.risk.report
    items = [with_risk(device_out(row, service.live_snapshot(row.id)), report) for row in rows]
    return DevicePage(total=total, limit=limit, offset=offset, items=items)


@router.get("/tags", response_model=list[str], summary="Tags in use")
async def list_tags(service: Service, _: Reader) -> list[str]:
    async with service.sessions() as session:
        return await reports.list_tags(session)


@router.get(
    "/devices/{device_id}",
    response_model=DeviceDetail,
    responses=NOT_FOUND,
    summary="One device: live state, uptime, recent transitions, latest metrics",
    description="Uptime counts time in online or late as up; stale, offline and lost as "
    "down; maintenance, unknown and time before the device was first seen are not "
    "counted. It is computed from the transitions table.",
)
async def get_device(service: Service, _: Reader, device_id: DevicePath) -> DeviceDetail:
    live = service.live_snapshot(device_id)
    now = datetime.now(UTC)
    async with service.sessions() as session:
        row = await reports.get_device(session, device_id=device_id)
        if row is None and live is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no device {device_id!r}")
        timeline = await reports.list_transitions(
            session, device_id=device_id, limit=TIMELINE_LENGTH, newest_first=True
        )
        longest = max(days for _, days in UPTIME_WINDOWS)
        before, changes = await reports.state_history(
            session, device_id=device_id, since=now - timedelta(days=longest)
        )
    base = with_risk(device_out(row, live), service.risk.report)
    points = [(at.timestamp(), state) for at, state in changes]
    end = now.timestamp()
    windows: list[UptimeOut] = []
    for name, days in UPTIME_WINDOWS:
        start = end - days * 86_400
        # The state at this window's start: the last change at or before it.
        state_before = before
        for at, state in points:
            if at > start:
                break
            state_before = state
        result = uptime(state_before, points, start=start, end=end)
        windows.append(
            UptimeOut(
                window=name,
                percent=None if result.percent is None else round(result.percent, 3),
                up_seconds=round(result.up_seconds, 3),
                down_seconds=round(result.down_seconds, 3),
            )
        )
    return DeviceDetail(
        **base.model_dump(by_alias=True),
        metrics=dict(row.latest_metrics) if row is not None and row.latest_metrics else None,
        uptime=windows,
        timeline=[transition_out(t) for t in timeline],
    )


@router.get(
    "/devices/{device_id}/transitions",
    response_model=TransitionPage,
    responses=NOT_FOUND,
    summary="A device's state timeline (transitions table), newest first",
)
async def device_transitions(
    *,
    service: Service,
    _: Reader,
    device_id: DevicePath,
    since: Annotated[datetime | None, Query(description="At or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> TransitionPage:
    since, until = _aware(since, "since"), _aware(until, "until")
    async with service.sessions() as session:
        if await reports.get_device(session, device_id=device_id) is None and (
            service.engine is None or device_id not in service.engine
        ):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no device {device_id!r}")
        total = await reports.count_transitions(
            session, device_id=device_id, since=since, until=until
        )
        rows = await reports.list_transitions(
            session,
            device_id=device_id,
            since=since,
            until=until,
            limit=limit + offset,
            newest_first=True,
        )
    return TransitionPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[transition_out(t) for t in rows[offset:]],
    )


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"{name}: give a time zone (e.g. 2026-11-24T20:00:00Z)",
        )
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"{name}: out of range"
        ) from exc


async def _series(service: Service, rng: Range, device_id: str | None) -> SeriesOut:
    now = time.time()
    start, end, _step = window(rng, now)
    async with service.sessions() as session:
        sums = await reports.rollup_sums(
            session,
            since=datetime.fromtimestamp(start, UTC),
            until=datetime.fromtimestamp(end, UTC),
            device_id=device_id,
        )
    minutes = [
        MinuteFigures(
            minute=s.minute.timestamp(),
            count=s.count,
            missed=s.missed,
            latency_count=s.latency_count,
            latency_sum_ms=s.latency_sum_ms,
            latency_max_ms=s.latency_max_ms,
            jitter_count=s.jitter_count,
            jitter_sum_ms=s.jitter_sum_ms,
            jitter_max_ms=s.jitter_max_ms,
        )
        for s in sums
    ]
    return series_out(rng, now, minutes)


RangeQuery = Annotated[
    Range, Query(alias="range", description="1h (1-min buckets), 24h (15 min), 7d (1 h)")
]


@router.get(
    "/fleet/heartbeats",
    response_model=SeriesOut,
    summary="Fleet heartbeats per minute, missed heartbeats, latency and jitter",
    description="From the per-minute heartbeat rollups of every device. Figures of the "
    "current minute appear after the next flush (1 s by default).",
)
async def fleet_heartbeats(service: Service, _: Reader, rng: RangeQuery = Range.HOUR) -> SeriesOut:
    return await _series(service, rng, None)


@router.get(
    "/devices/{device_id}/heartbeats",
    response_model=SeriesOut,
    responses=NOT_FOUND,
    summary="One device's heartbeats per minute, missed heartbeats, latency and jitter",
)
async def device_heartbeats(
    service: Service,
    _: Reader,
    device_id: DevicePath,
    rng: RangeQuery = Range.HOUR,
) -> SeriesOut:
    if service.engine is None or device_id not in service.engine:
        async with service.sessions() as session:
            if await reports.get_device(session, device_id=device_id) is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no device {device_id!r}")
    return await _series(service, rng, device_id)


@router.get("/classes", response_model=list[ClassOut], summary="Device classes")
async def list_classes(service: Service, _: Reader) -> list[ClassOut]:
    async with service.sessions() as session:
        classes = await reports.list_classes(session)
        members = await reports.count_devices_by_class(session)
    return [class_out(c, members.get(c.name, 0)) for c in classes]


@router.get(
    "/classes/{name}", response_model=ClassOut, responses=NOT_FOUND, summary="One device class"
)
async def get_class(service: Service, _: Reader, name: ClassPath) -> ClassOut:
    async with service.sessions() as session:
        cls = await reports.get_class(session, name=name)
        if cls is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no device class {name!r}")
        members = await reports.count_devices_by_class(session)
    return class_out(cls, members.get(name, 0))


def class_out(cls: DeviceClass, devices: int) -> ClassOut:
    return ClassOut(
        name=cls.name,
        interval=cls.interval,
        grace=cls.grace,
        missed_limit=cls.missed_limit,
        lost_after=cls.lost_after,
        description=cls.description,
        devices=devices,
    )


@router.get(
    "/events",
    summary="Live events (server-sent events): transitions and fleet summaries",
    description="An `text/event-stream`. Events: `summary` (on connect, then every few "
    "seconds; body as GET /api/summary), `transition` (device, old, new, reason, at, "
    "session, class, last_seen, interval), `resync` (events were dropped because the "
    "client fell behind: reload). Browsers' EventSource cannot send headers, so this "
    "endpoint also accepts the token as the `token` query parameter.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(service: Service, _: StreamReader) -> StreamingResponse:
    hub = service.events
    sub = hub.subscribe()
    first = LiveEvent("summary", summary_of(service).model_dump(mode="json"), 0)
    # Starlette cancels the stream when the client goes away; its finally unsubscribes.
    return StreamingResponse(
        hub.stream(sub, first=first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""Alerting endpoints: alerts and acknowledgement, channels, rules, mutes.

Thin: every change goes through :mod:`monitor.alerts.api` (what ``clawbeat alerts``
uses too), committed here; the running monitor picks it up within its alert poll
interval (1 s). Channel URLs are secrets and are only ever shown redacted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import Field

from monitor.alerts import api as alerts
from monitor.alerts.errors import (
    AlertingError,
    AlertNotFound,
    AlreadyAcknowledged,
    ChannelExists,
    ChannelNotFound,
    DeliveryFailed,
    RuleNotFound,
    WindowNotFound,
)
from monitor.alerts.models import Alert, AlertRule, Mute
from monitor.web.auth import Admin, Reader
from monitor.web.deps import ADMIN_ERRORS, CONFLICT, NOT_FOUND, READ_ERRORS, DevicePath, Service
from monitor.web.schemas import ID_PATTERN, DeviceId, ErrorOut, InModel, OutModel, Tag

router = APIRouter(prefix="/api", tags=["alerts"])

NamePath = Annotated[str, Path(pattern=ID_PATTERN, description="1-64 of A-Z a-z 0-9 . _ -")]
IdPath = Annotated[int, Path(ge=1, le=2**62)]


class AlertOut(OutModel):
    id: int
    kind: str = Field(
        description="device, outage (many devices at once), recoveries, or at-risk (a "
        "device the risk scorer flags, for an at-risk rule)"
    )
    device_id: str | None
    state: str
    reason: str | None
    severity: str
    status: str = Field(description="open or resolved")
    flapping: bool
    title: str
    message: str
    channels: list[str]
    opened_at: datetime
    resolved_at: datetime | None
    repeats: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    snoozed_until: datetime | None


class DeliveryOut(OutModel):
    id: int
    alert_id: int
    channel: str
    event: str = Field(description="What it announces: down, repeat, escalated, recovered, ...")
    title: str
    state: str = Field(description="pending (queued or retrying), sending, sent, failed (gave up)")
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None = Field(description="Why the last attempt failed; secrets masked")


class ChannelOut(OutModel):
    name: str
    url: str = Field(description="Redacted: passwords and tokens masked")
    scheme: str
    description: str
    created_at: datetime


class ChannelIn(InModel):
    url: Annotated[
        str, Field(min_length=4, max_length=2_000, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://")
    ] = Field(description="An apprise URL (mailto://, json://, slack://, ...)")
    description: Annotated[str, Field(max_length=1_000)] = ""


class RuleOut(OutModel):
    name: str
    channels: list[str]
    classes: list[str]
    tags: list[str]
    min_severity: str
    escalate_to: list[str]
    kind: str
    min_risk: str | None


class RuleIn(InModel):
    channels: list[DeviceId] = Field(min_length=1, max_length=32)
    classes: list[DeviceId] = Field(default_factory=list, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    min_severity: Literal["warning", "critical"] = "critical"
    escalate_to: list[DeviceId] = Field(default_factory=list, max_length=32)
    kind: Literal["state", "at-risk"] = Field(
        "state",
        description="state: route down/late alerts; at-risk: one warning when the device's "
        "risk level reaches min_risk (opt-in)",
    )
    min_risk: Literal["elevated", "high"] | None = Field(
        None, description="kind at-risk: the lowest risk level alerted on (default high)"
    )


class MuteOut(OutModel):
    id: int
    devices: list[str]
    classes: list[str]
    tags: list[str]
    until: datetime
    note: str


class MuteIn(InModel):
    minutes: Annotated[float, Field(ge=1, le=366 * 24 * 60, allow_inf_nan=False)] = Field(
        description="How long to silence the device's alerts"
    )
    note: Annotated[str, Field(max_length=1_000)] = ""


def _alert(a: Alert) -> AlertOut:
    return AlertOut(
        id=a.id,
        kind=a.kind,
        device_id=a.device_id,
        state=a.state,
        reason=a.reason,
        severity=a.severity,
        status=a.status,
        flapping=a.flapping,
        title=a.title,
        message=a.message,
        channels=list(a.channels or []),
        opened_at=a.opened_at,
        resolved_at=a.resolved_at,
        repeats=a.repeats,
        acknowledged_at=a.acknowledged_at,
        acknowledged_by=a.acknowledged_by,
        snoozed_until=a.snoozed_until,
    )


def _rule(r: AlertRule) -> RuleOut:
    return RuleOut(
        name=r.name,
        channels=list(r.channels or []),
        classes=list(r.classes or []),
        tags=list(r.tags or []),
        min_severity=r.min_severity,
        escalate_to=list(r.escalate_to or []),
        kind=r.kind,
        min_risk=r.min_risk,
    )


def _mute(m: Mute) -> MuteOut:
    return MuteOut(
        id=m.id,
        devices=list(m.devices or []),
        classes=list(m.classes or []),
        tags=list(m.tags or []),
        until=m.until,
        note=m.note,
    )


def alerting_error(_request: Request, exc: Exception) -> JSONResponse:
    """Alerting errors as HTTP answers (registered on the app)."""
    code = status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(exc, AlertNotFound | ChannelNotFound | RuleNotFound | WindowNotFound):
        code = status.HTTP_404_NOT_FOUND
    elif isinstance(exc, AlreadyAcknowledged | ChannelExists):
        code = status.HTTP_409_CONFLICT
    elif isinstance(exc, DeliveryFailed):
        code = status.HTTP_502_BAD_GATEWAY
    return JSONResponse({"detail": str(exc)}, status_code=code)


# --- alerts ---------------------------------------------------------------------------


@router.get(
    "/alerts", response_model=list[AlertOut], responses=READ_ERRORS, summary="Alerts, newest first"
)
async def list_alerts(
    *,
    service: Service,
    _: Reader,
    status_: Annotated[Literal["open", "resolved"] | None, Query(alias="status")] = None,
    device: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[AlertOut]:
    async with service.sessions() as session:
        rows = await alerts.list_alerts(
            session, status=status_, device_id=device, limit=limit, offset=offset
        )
    return [_alert(a) for a in rows]


@router.get(
    "/alerts/{alert_id}",
    response_model=AlertOut,
    responses={**READ_ERRORS, **NOT_FOUND},
    summary="One alert",
)
async def get_alert(service: Service, _: Reader, alert_id: IdPath) -> AlertOut:
    async with service.sessions() as session:
        return _alert(await alerts.get_alert(session, alert_id=alert_id))


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses={**ADMIN_ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Acknowledge an alert: its repeats and escalation stop (recovery is still sent)",
)
async def acknowledge(service: Service, principal: Admin, alert_id: IdPath) -> AlertOut:
    async with service.sessions() as session:
        alert = await alerts.acknowledge(
            session, alert_id=alert_id, by=f"api:{principal.name}"[:128]
        )
        await session.commit()
    return _alert(alert)


@router.get(
    "/deliveries",
    response_model=list[DeliveryOut],
    responses=READ_ERRORS,
    summary="Notifications sent or to be sent to channels, newest first",
)
async def list_deliveries(
    *,
    service: Service,
    _: Reader,
    state: Annotated[Literal["pending", "sending", "sent", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 50,
) -> list[DeliveryOut]:
    async with service.sessions() as session:
        views = await alerts.list_delivery_views(session, state=state, limit=limit)
    return [
        DeliveryOut(
            id=v.id,
            alert_id=v.alert_id,
            channel=v.channel,
            event=v.event,
            title=v.title,
            state=v.state,
            attempts=v.attempts,
            next_attempt_at=v.next_attempt_at,
            created_at=v.created_at,
            sent_at=v.sent_at,
            last_error=v.last_error,
        )
        for v in views
    ]


# --- channels -------------------------------------------------------------------------


@router.get(
    "/channels",
    response_model=list[ChannelOut],
    responses=READ_ERRORS,
    summary="Notification channels (URLs redacted)",
)
async def list_channels(service: Service, _: Reader) -> list[ChannelOut]:
    async with service.sessions() as session:
        channels = await alerts.list_channels(session)
    return [_channel(c) for c in channels]


def _channel(channel: Any) -> ChannelOut:
    view = alerts.channel_view(channel)
    return ChannelOut(
        name=view.name,
        url=view.url,
        scheme=view.scheme,
        description=view.description,
        created_at=view.created_at,
    )


@router.put(
    "/channels/{name}",
    response_model=ChannelOut,
    responses=ADMIN_ERRORS,
    summary="Create or replace a notification channel (an apprise URL)",
)
async def put_channel(service: Service, _: Admin, name: NamePath, body: ChannelIn) -> ChannelOut:
    async with service.sessions() as session:
        channel = await alerts.add_channel(
            session, name=name, url=body.url, description=body.description, replace=True
        )
        await session.commit()
    return _channel(channel)


@router.delete(
    "/channels/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**ADMIN_ERRORS, **NOT_FOUND},
    summary="Delete a channel",
)
async def delete_channel(service: Service, _: Admin, name: NamePath) -> Response:
    async with service.sessions() as session:
        await alerts.remove_channel(session, name=name)
        await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/channels/{name}/test",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **ADMIN_ERRORS,
        **NOT_FOUND,
        502: {"model": ErrorOut, "description": "The channel refused the notification"},
    },
    summary="Send a test notification through a channel now",
)
async def send_test_notification(service: Service, _: Admin, name: NamePath) -> Response:
    async with service.sessions() as session:
        await alerts.send_test_notification(session, name=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- rules ----------------------------------------------------------------------------


@router.get("/rules", response_model=list[RuleOut], responses=READ_ERRORS, summary="Alert rules")
async def list_rules(service: Service, _: Reader) -> list[RuleOut]:
    async with service.sessions() as session:
        return [_rule(r) for r in await alerts.list_rules(session)]


@router.put(
    "/rules/{name}",
    response_model=RuleOut,
    responses=ADMIN_ERRORS,
    summary="Create or replace an alert rule: which devices alert, where, from which severity",
)
async def put_rule(service: Service, _: Admin, name: NamePath, body: RuleIn) -> RuleOut:
    async with service.sessions() as session:
        rule = await alerts.put_rule(
            session,
            name=name,
            channels=body.channels,
            classes=body.classes,
            tags=body.tags,
            min_severity=body.min_severity,
            escalate_to=body.escalate_to,
            kind=body.kind,
            min_risk=body.min_risk,
        )
        await session.commit()
    return _rule(rule)


@router.delete(
    "/rules/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**ADMIN_ERRORS, **NOT_FOUND},
    summary="Delete an alert rule",
)
async def delete_rule(service: Service, _: Admin, name: NamePath) -> Response:
    async with service.sessions() as session:
        await alerts.remove_rule(session, name=name)
        await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- mutes ----------------------------------------------------------------------------


@router.get("/mutes", response_model=list[MuteOut], responses=READ_ERRORS, summary="Active mutes")
async def list_mutes(service: Service, _: Reader) -> list[MuteOut]:
    async with service.sessions() as session:
        return [_mute(m) for m in await alerts.list_mutes(session)]


@router.post(
    "/devices/{device_id}/mute",
    response_model=MuteOut,
    status_code=status.HTTP_201_CREATED,
    responses=ADMIN_ERRORS,
    summary="Silence a device's alerts for a while (its state is still tracked)",
)
async def mute_device(service: Service, _: Admin, device_id: DevicePath, body: MuteIn) -> MuteOut:
    async with service.sessions() as session:
        mute = await alerts.add_mute(
            session,
            scope=alerts.scope_of(devices=[device_id]),
            duration=timedelta(minutes=body.minutes),
            note=body.note,
        )
        await session.commit()
    return _mute(mute)


@router.delete(
    "/mutes/{mute_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**ADMIN_ERRORS, **NOT_FOUND},
    summary="End a mute now",
)
async def end_mute(service: Service, _: Admin, mute_id: IdPath) -> Response:
    async with service.sessions() as session:
        await alerts.end_mute(session, mute_id=mute_id)
        await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


__all__ = ["AlertingError", "alerting_error", "router"]

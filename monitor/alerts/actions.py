"""Carrying out alert decisions: one database transaction each, then the notifications.

:class:`AlertActions` turns the core's intents (``core.py``) and due follow-ups
(``followup.py``) into rows: the alert (insert, or compare-and-set update), its
deliveries in the outbox (one per channel, unique ``dedup_key``), and, after the
commit, the event published on ``{root}/alerts``. Every action is idempotent, so the
shell can retry one after a database error without notifying twice:

* opening inserts with ``ON CONFLICT DO NOTHING`` on the alert's ``key`` (a retry) and
  ``open_key`` (a device or incident can have one open alert only);
* updates and resolutions are compare-and-set on the state that was read
  (``update_alert_if``): an acknowledgement, a recovery or another replica committed
  in between makes them do nothing;
* deliveries are keyed by (alert, transition or follow-up number, event, channel).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.alerts import repository
from monitor.alerts.core import (
    DeviceContext,
    DeviceState,
    Event,
    GrowOutage,
    Intent,
    OpenAlert,
    OpenOutage,
    OpenRiskAlert,
    ResolveAlert,
    ResolveGroup,
    ResolveOutage,
    ResolveRiskAlert,
    UpdateAlert,
)
from monitor.alerts.followup import FollowUpKind
from monitor.alerts.levels import Severity
from monitor.alerts.messages import (
    Message,
    at_risk_message,
    device_message,
    device_summary,
    escalation_message,
    event_payload,
    outage_message,
    outage_over_message,
    outage_summary,
    recoveries_message,
    repeat_message,
    risk_cleared_message,
    risk_reason,
    risk_summary,
)
from monitor.alerts.models import Alert
from monitor.alerts.repository import NewDelivery
from monitor.alerts.routing import Route
from monitor.cluster.fencing import Fence, require_partition
from monitor.timefmt import from_datetime

MAX_STORED_MEMBERS: Final = 100_000


@dataclass(slots=True)
class AlertStats:
    """Counters since start, for /metrics (``Outbox.stats`` has sent and failed)."""

    intents: int = 0
    alerts_opened: int = 0
    outages: int = 0
    notifications_queued: int = 0
    events_published: int = 0
    events_dropped: int = 0
    intents_dropped: int = 0
    followups: int = 0
    fenced: int = 0  # decisions for a partition this replica no longer held


class AlertActions:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        route: Callable[[DeviceContext, Severity], Route],
        route_risk: Callable[[DeviceContext, str], Route],
        context: Callable[[str], DeviceContext],
        emit: Callable[[bytes], None],
        flap_window: float,
        stats: AlertStats,
        logger: logging.Logger,
        fence: Callable[[], Fence] | None = None,
    ) -> None:
        self._sessions = sessions
        # Cluster mode: a device's alert is opened or closed only by the replica holding
        # its partition, checked in the transaction that writes it (docs/cluster.md).
        self._fence = fence
        self._route = route
        self._route_risk = route_risk
        self._context = context
        self._emit = emit
        self._flap_window = flap_window
        self.stats = stats
        self._log = logger

    async def _require_partition(self, session: AsyncSession, device_id: str) -> None:
        if self._fence is not None:
            await require_partition(session, fence=self._fence(), device_id=device_id)

    async def execute(self, intent: Intent) -> None:
        if isinstance(intent, OpenAlert):
            await self._open_device_alert(intent)
        elif isinstance(intent, UpdateAlert):
            await self._update_device_alert(intent)
        elif isinstance(intent, ResolveAlert):
            await self._resolve_device_alert(intent)
        elif isinstance(intent, ResolveGroup):
            await self._resolve_group(intent)
        elif isinstance(intent, OpenOutage):
            await self._open_outage(intent)
        elif isinstance(intent, GrowOutage):
            await self._grow_outage(intent)
        elif isinstance(intent, OpenRiskAlert):
            await self._open_risk_alert(intent)
        elif isinstance(intent, ResolveRiskAlert):
            await self._resolve_risk_alert(intent)
        else:
            await self._resolve_outage(intent)

    async def _open_device_alert(self, intent: OpenAlert) -> None:
        device = intent.device
        severity = intent.severity
        destinations = self._route(device.context, severity)
        now = datetime.now(UTC)
        event = intent.event
        async with self._sessions() as session:
            await self._require_partition(session, device.device_id)
            alert_id = await repository.insert_alert(
                session,
                values={
                    "key": intent.key,
                    "open_key": f"device:{device.device_id}",
                    "kind": "device",
                    "device_id": device.device_id,
                    "state": device.state,
                    "reason": device.reason,
                    "severity": severity.value,
                    "status": repository.OPEN,
                    "flapping": intent.flapping,
                    "title": device_summary(device, flapping=intent.flapping),
                    "details": _device_details(
                        device, changes=intent.changes, never_seen=intent.never_seen
                    ),
                    "channels": list(destinations.channels),
                    "escalate_to": list(destinations.escalate_to),
                    "opened_at": now,
                    "updated_at": now,
                    "last_notified_at": now,
                    "repeats": 0,
                },
            )
            if alert_id is None:
                return  # done before (a retried write) or already open
            message = device_message(
                event,
                alert_id=alert_id,
                device=device,
                severity=severity,
                changes=intent.changes,
                flap_window=self._flap_window,
                never_seen=intent.never_seen,
            )
            await self._deliver_opened(
                session,
                alert_id,
                message,
                key=intent.key,
                event=event,
                channels=destinations.channels,
                at=now,
            )
        self._announce_opened(
            alert_id,
            event,
            message,
            kind="device",
            severity=severity.value,
            status="open",
            at_wall=device.at_wall,
            device=device,
            channels=destinations.channels,
        )

    async def _update_device_alert(self, intent: UpdateAlert) -> None:
        device = intent.device
        now = datetime.now(UTC)
        async with self._sessions() as session:
            await self._require_partition(session, device.device_id)
            alert = await repository.find_open(session, open_key=f"device:{device.device_id}")
            if alert is None or (intent.event is Event.WORSE and alert.state == device.state):
                return
            destinations = self._route(device.context, intent.severity) | Route(
                tuple(alert.channels), tuple(alert.escalate_to)
            )
            message = device_message(
                intent.event,
                alert_id=alert.id,
                device=device,
                severity=intent.severity,
                changes=intent.changes,
                flap_window=self._flap_window,
            )
            won = await repository.update_alert_if(
                session,
                alert_id=alert.id,
                # Compare-and-set: a concurrent resolve or update of this alert wins.
                expect={
                    "status": repository.OPEN,
                    "state": alert.state,
                    "flapping": alert.flapping,
                },
                values={
                    "state": device.state,
                    "reason": device.reason,
                    "severity": intent.severity.value,
                    "flapping": intent.flapping,
                    "title": device_summary(device, flapping=intent.flapping),
                    "message": message.body,
                    "channels": list(destinations.channels),
                    "escalate_to": list(destinations.escalate_to),
                    "updated_at": now,
                    "last_notified_at": now,
                },
            )
            if not won:
                return
            recipients = _recipients(destinations, escalated=alert.escalated_at is not None)
            await self._notify(
                session,
                alert.id,
                message,
                key=intent.key,
                event=intent.event,
                channels=recipients,
                at=now,
            )
            await session.commit()
        self._log.warning("alert #%d: %s", alert.id, message.title)
        self._publish(
            alert.id,
            intent.event,
            message,
            kind="device",
            severity=intent.severity.value,
            status="open",
            at_wall=device.at_wall,
            device=device,
            channels=recipients,
        )

    async def _resolve_device_alert(self, intent: ResolveAlert) -> None:
        device = intent.device
        now = datetime.now(UTC)
        async with self._sessions() as session:
            await self._require_partition(session, device.device_id)
            alert = await repository.find_open(session, open_key=f"device:{device.device_id}")
            if alert is None:
                return
            won = await repository.update_alert_if(
                session,
                alert_id=alert.id,
                expect={"status": repository.OPEN},
                values=_resolved(now, state=device.state, reason=device.reason or intent.note),
            )
            if not won or intent.event is None:
                await session.commit()
                return
            details = alert.details or {}
            message = device_message(
                intent.event,
                alert_id=alert.id,
                device=device,
                severity=Severity(alert.severity),
                flap_window=self._flap_window,
                down_since=details.get("down_since"),
                resolved=True,
            )
            recipients = _recipients(
                Route(tuple(alert.channels), tuple(alert.escalate_to)),
                escalated=alert.escalated_at is not None,
            )
            await self._notify(
                session,
                alert.id,
                message,
                key=intent.key,
                event=intent.event,
                channels=recipients,
                at=now,
            )
            await session.commit()
        self._log.info("alert #%d: %s", alert.id, message.title)
        self._publish(
            alert.id,
            intent.event,
            message,
            kind="device",
            severity=alert.severity,
            status="resolved",
            at_wall=device.at_wall,
            device=device,
            channels=recipients,
        )

    async def _open_risk_alert(self, intent: OpenRiskAlert) -> None:
        device = intent.device
        destinations = self._route_risk(device.context, intent.level)
        now = datetime.now(UTC)
        event = Event.AT_RISK
        async with self._sessions() as session:
            await self._require_partition(session, device.device_id)
            alert_id = await repository.insert_alert(
                session,
                values={
                    "key": intent.key,
                    "open_key": f"at-risk:{device.device_id}",
                    "kind": "at-risk",
                    "device_id": device.device_id,
                    "state": device.state,
                    "reason": risk_reason(intent.reasons),
                    "severity": Severity.WARNING.value,
                    "status": repository.OPEN,
                    "flapping": False,
                    "title": risk_summary(device.device_id, intent.level),
                    "details": {
                        "class": device.context.device_class,
                        "tags": sorted(device.context.tags),
                        "risk": intent.level,
                        "reasons": list(intent.reasons),
                        "since": device.at_wall,
                    },
                    "channels": list(destinations.channels),
                    "escalate_to": [],
                    "opened_at": now,
                    "updated_at": now,
                    "last_notified_at": now,
                    "repeats": 0,
                },
            )
            if alert_id is None:
                return  # done before (a retried write) or already open
            message = at_risk_message(
                alert_id=alert_id, device=device, level=intent.level, reasons=intent.reasons
            )
            await self._deliver_opened(
                session,
                alert_id,
                message,
                key=intent.key,
                event=event,
                channels=destinations.channels,
                at=now,
            )
        self._announce_opened(
            alert_id,
            event,
            message,
            kind="at-risk",
            severity=Severity.WARNING.value,
            status="open",
            at_wall=device.at_wall,
            device=device,
            channels=destinations.channels,
            extra={"risk": intent.level, "reasons": list(intent.reasons)},
        )

    async def _resolve_risk_alert(self, intent: ResolveRiskAlert) -> None:
        device = intent.device
        now = datetime.now(UTC)
        async with self._sessions() as session:
            await self._require_partition(session, device.device_id)
            alert = await repository.find_open(session, open_key=f"at-risk:{device.device_id}")
            if alert is None:
                return
            won = await repository.update_alert_if(
                session,
                alert_id=alert.id,
                expect={"status": repository.OPEN},
                values=_resolved(now, state=device.state, reason=intent.note or alert.reason),
            )
            if not won or intent.event is None:
                await session.commit()
                return
            details = alert.details or {}
            message = risk_cleared_message(
                alert_id=alert.id, device=device, opened=details.get("since")
            )
            recipients = tuple(alert.channels)
            await self._notify(
                session,
                alert.id,
                message,
                key=intent.key,
                event=intent.event,
                channels=recipients,
                at=now,
            )
            await session.commit()
        self._log.info("alert #%d: %s", alert.id, message.title)
        self._publish(
            alert.id,
            intent.event,
            message,
            kind="at-risk",
            severity=alert.severity,
            status="resolved",
            at_wall=device.at_wall,
            device=device,
            channels=recipients,
        )

    async def _resolve_group(self, intent: ResolveGroup) -> None:
        now = datetime.now(UTC)
        resolved: list[Alert] = []
        async with self._sessions() as session:
            for device in intent.devices:
                alert = await repository.find_open(session, open_key=f"device:{device.device_id}")
                if alert is not None and await repository.update_alert_if(
                    session,
                    alert_id=alert.id,
                    expect={"status": repository.OPEN},
                    values=_resolved(now, state=device.state, reason=device.reason),
                ):
                    resolved.append(alert)
            if not resolved:
                await session.commit()
                return
            destinations = Route()
            for alert in resolved:
                destinations = destinations | Route(
                    _recipients(
                        Route(tuple(alert.channels), tuple(alert.escalate_to)),
                        escalated=alert.escalated_at is not None,
                    )
                )
            ids = {a.device_id for a in resolved}
            devices = [d for d in intent.devices if d.device_id in ids]
            group_id = await repository.insert_alert(
                session,
                values={
                    "key": intent.key,
                    "open_key": None,
                    "kind": "recoveries",
                    "device_id": None,
                    "state": "online",
                    "reason": None,
                    "severity": _worst_of(resolved).value,
                    "status": repository.RESOLVED,
                    "title": f"{len(devices)} devices recovered",
                    "details": {
                        "devices": sorted(d.device_id for d in devices),
                        "alerts": [a.id for a in resolved],
                    },
                    "channels": list(destinations.channels),
                    "escalate_to": [],
                    "opened_at": now,
                    "updated_at": now,
                    "resolved_at": now,
                    "last_notified_at": now,
                    "repeats": 0,
                },
            )
            if group_id is None:
                await session.commit()
                return
            message = recoveries_message(alert_id=group_id, devices=devices)
            await repository.update_alert_if(
                session, alert_id=group_id, expect={}, values={"message": message.body}
            )
            await self._notify(
                session,
                group_id,
                message,
                key=intent.key,
                event=Event.RECOVERIES,
                channels=destinations.channels,
                at=now,
            )
            await session.commit()
        self._log.info("alert #%d: %s", group_id, message.title)
        self._publish(
            group_id,
            Event.RECOVERIES,
            message,
            kind="recoveries",
            severity=_worst_of(resolved).value,
            status="resolved",
            at_wall=intent.at_wall,
            channels=destinations.channels,
            extra={"devices": len(devices)},
        )

    async def _open_outage(self, intent: OpenOutage) -> None:
        destinations = Route()
        for device in intent.devices:
            destinations = destinations | self._route(device.context, Severity.CRITICAL)
        now = datetime.now(UTC)
        count = len(intent.devices)
        async with self._sessions() as session:
            alert_id = await repository.insert_alert(
                session,
                values={
                    "key": intent.key,
                    "open_key": intent.key,
                    "kind": "outage",
                    "device_id": None,
                    "state": "outage",
                    "reason": None,
                    "severity": Severity.CRITICAL.value,
                    "status": repository.OPEN,
                    "title": outage_summary(count),
                    "details": {
                        "devices": sorted(d.device_id for d in intent.devices)[:MAX_STORED_MEMBERS],
                        "total": count,
                        "first": intent.first_wall,
                    },
                    "channels": list(destinations.channels),
                    "escalate_to": list(destinations.escalate_to),
                    "opened_at": now,
                    "updated_at": now,
                    "last_notified_at": now,
                    "repeats": 0,
                },
            )
            if alert_id is None:
                return
            message = outage_message(
                alert_id=alert_id,
                devices=intent.devices,
                first_wall=intent.first_wall,
                at_wall=intent.at_wall,
            )
            await repository.update_alert_if(
                session, alert_id=alert_id, expect={}, values={"message": message.body}
            )
            await self._notify(
                session,
                alert_id,
                message,
                key=intent.key,
                event=Event.OUTAGE,
                channels=destinations.channels,
                at=now,
            )
            await session.commit()
        self.stats.outages += 1
        self._log.warning("alert #%d: %s", alert_id, message.title)
        self._publish(
            alert_id,
            Event.OUTAGE,
            message,
            kind="outage",
            severity=Severity.CRITICAL.value,
            status="open",
            at_wall=intent.at_wall,
            channels=destinations.channels,
            extra={"devices": count},
        )

    async def _grow_outage(self, intent: GrowOutage) -> None:
        """Drops joining an incident: recorded on it, without a notification."""
        async with self._sessions() as session:
            alert = await repository.find_open(session, open_key=intent.key)
            if alert is None:
                return
            details = dict(alert.details or {})
            members = set(details.get("devices", []))
            members.update(d.device_id for d in intent.devices)
            details["devices"] = sorted(members)[:MAX_STORED_MEMBERS]
            details["total"] = len(members)
            await repository.update_alert_if(
                session,
                alert_id=alert.id,
                expect={"status": repository.OPEN},
                values={
                    "details": details,
                    "title": outage_summary(len(members)),
                    "updated_at": datetime.now(UTC),
                },
            )
            await session.commit()

    async def _resolve_outage(self, intent: ResolveOutage) -> None:
        now = datetime.now(UTC)
        async with self._sessions() as session:
            alert = await repository.find_open(session, open_key=intent.key)
            if alert is None:
                return
            details = dict(alert.details or {})
            details.update(recovered=intent.recovered, still_down=list(intent.still_down))
            won = await repository.update_alert_if(
                session,
                alert_id=alert.id,
                expect={"status": repository.OPEN},
                values={**_resolved(now, state="online", reason=None), "details": details},
            )
            if not won:
                return
            opened = from_datetime(alert.opened_at) or intent.at_wall
            message = outage_over_message(
                alert_id=alert.id,
                total=intent.total,
                recovered=intent.recovered,
                still_down=intent.still_down,
                duration=intent.at_wall - float(details.get("first", opened)),
            )
            recipients = _recipients(
                Route(tuple(alert.channels), tuple(alert.escalate_to)),
                escalated=alert.escalated_at is not None,
            )
            await self._notify(
                session,
                alert.id,
                message,
                key=intent.key,
                event=Event.OUTAGE_OVER,
                channels=recipients,
                at=now,
            )
            await session.commit()
        self._log.info("alert #%d: %s", alert.id, message.title)
        self._publish(
            alert.id,
            Event.OUTAGE_OVER,
            message,
            kind="outage",
            severity=alert.severity,
            status="resolved",
            at_wall=intent.at_wall,
            channels=recipients,
            extra={"devices": intent.total, "recovered": intent.recovered},
        )

    async def followup(self, alert: Alert, kind: FollowUpKind, number: int, now: datetime) -> bool:
        open_for = (now - alert.opened_at).total_seconds()
        async with self._sessions() as session:
            if kind is FollowUpKind.ESCALATE:
                # Compare-and-set against an acknowledgement (CLI/API) or a recovery
                # committed since the candidates were read: then nothing is sent.
                won = await repository.update_alert_if(
                    session,
                    alert_id=alert.id,
                    expect={
                        "status": repository.OPEN,
                        "acknowledged_at": None,
                        "escalated_at": None,
                    },
                    values={"escalated_at": now, "updated_at": now},
                )
                message = escalation_message(
                    alert_id=alert.id, summary=alert.title, body=alert.message, open_for=open_for
                )
                recipients: tuple[str, ...] = tuple(alert.escalate_to)
                event = Event.ESCALATED
                key = f"alert-{alert.id}:escalated"
                alert.escalated_at = now
            else:
                won = await repository.update_alert_if(
                    session,
                    alert_id=alert.id,
                    expect={
                        "status": repository.OPEN,
                        "acknowledged_at": None,
                        "repeats": alert.repeats,
                    },
                    values={"repeats": number, "last_notified_at": now, "updated_at": now},
                )
                message = repeat_message(
                    alert_id=alert.id,
                    summary=alert.title,
                    body=alert.message,
                    number=number,
                    open_for=open_for,
                )
                recipients = _recipients(
                    Route(tuple(alert.channels), tuple(alert.escalate_to)),
                    escalated=alert.escalated_at is not None,
                )
                event = Event.REPEAT
                key = f"alert-{alert.id}:repeat-{number}"
            if not won:
                return False
            await self._notify(
                session, alert.id, message, key=key, event=event, channels=recipients, at=now
            )
            await session.commit()
        self.stats.followups += 1
        self._log.warning("alert #%d: %s", alert.id, message.title)
        device = None
        if alert.device_id is not None:
            device = DeviceState(
                alert.device_id,
                alert.state,
                alert.reason,
                time.time(),
                self._context(alert.device_id),
            )
        self._publish(
            alert.id,
            event,
            message,
            kind=alert.kind,
            severity=alert.severity,
            status=alert.status,
            at_wall=time.time(),
            device=device,
            channels=recipients,
        )
        return True

    async def _notify(
        self,
        session: AsyncSession,
        alert_id: int,
        message: Message,
        *,
        key: str,
        event: Event,
        channels: Sequence[str],
        at: datetime,
    ) -> None:
        """Deliveries queued as of ``at``, the instant the notification was decided: the same
        instant the alert's ``last_notified_at`` records, so the two never disagree."""
        rows = [
            NewDelivery(
                dedup_key=f"{key}:{event.value}:{channel}",
                alert_id=alert_id,
                channel=channel,
                event=event.value,
                title=message.title,
                body=message.body,
                notify_type=message.notify_type,
            )
            for channel in channels
        ]
        if rows:
            await repository.insert_deliveries(session, rows=rows, now=at)
            self.stats.notifications_queued += len(rows)

    async def _deliver_opened(
        self,
        session: AsyncSession,
        alert_id: int,
        message: Message,
        *,
        key: str,
        event: Event,
        channels: Sequence[str],
        at: datetime,
    ) -> None:
        """A new alert's message stored and its deliveries queued, in one transaction."""
        await repository.update_alert_if(
            session, alert_id=alert_id, expect={}, values={"message": message.body}
        )
        await self._notify(
            session, alert_id, message, key=key, event=event, channels=channels, at=at
        )
        await session.commit()

    def _announce_opened(
        self, alert_id: int, event: Event, message: Message, **published: Any
    ) -> None:
        """A new alert counted, logged and published on the alerts topic."""
        self.stats.alerts_opened += 1
        self._log.warning("alert #%d: %s", alert_id, message.title)
        self._publish(alert_id, event, message, **published)

    def _publish(
        self,
        alert_id: int,
        event: Event,
        message: Message,
        *,
        kind: str,
        severity: str,
        status: str,
        at_wall: float,
        device: DeviceState | None = None,
        channels: Sequence[str] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        payload = event_payload(
            alert_id=alert_id,
            event=event,
            kind=kind,
            severity=severity,
            status=status,
            title=message.title,
            message=message.body,
            at_wall=at_wall,
            device=device,
            channels=channels,
            extra=extra,
        )
        self._emit(payload)


def _device_details(
    device: DeviceState, *, changes: int, never_seen: bool = False
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "class": device.context.device_class,
        "tags": sorted(device.context.tags),
        "down_since": device.at_wall,
    }
    if changes:
        details["changes"] = changes
    if never_seen:
        details["never_seen"] = True
    return details


def _resolved(now: datetime, *, state: str, reason: str | None) -> dict[str, Any]:
    return {
        "status": repository.RESOLVED,
        "open_key": None,
        "resolved_at": now,
        "updated_at": now,
        "state": state,
        "reason": reason,
    }


def _recipients(destinations: Route, *, escalated: bool) -> tuple[str, ...]:
    if not escalated:
        return destinations.channels
    return tuple(sorted(set(destinations.channels) | set(destinations.escalate_to)))


def _worst_of(alerts: Sequence[Alert]) -> Severity:
    if any(a.severity == Severity.CRITICAL.value for a in alerts):
        return Severity.CRITICAL
    return Severity.WARNING

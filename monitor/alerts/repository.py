"""Alerting queries and statements. Session first, keywords after; nothing commits.

Like :mod:`monitor.store.repository`: the caller (the alerting shell, the CLI, the HTTP
API) opens the session and commits, so several calls can share one transaction.
Functions return complete ORM objects (no lazy loads) or plain values.

Races are settled by the database with compare-and-set (``UPDATE ... WHERE <the state
we read>``, rowcount checked): an alert acknowledged from the CLI while the monitor is
about to repeat it, two monitor replicas claiming the same delivery, a recovery racing
a repeat. The loser's statement matches no row and it does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.alerts.errors import (
    AlertNotFound,
    AlreadyAcknowledged,
    ChannelExists,
    ChannelNotFound,
    InvalidRule,
    InvalidSchedule,
    RuleNotFound,
    WindowNotFound,
)
from monitor.alerts.levels import Severity
from monitor.alerts.models import (
    Alert,
    AlertDelivery,
    AlertRule,
    Channel,
    MaintenanceWindow,
    Mute,
)
from monitor.alerts.routing import Rule
from monitor.alerts.schedule import Quiet, QuietMute, Scope, Window, parse_every
from monitor.store.database import translates_errors
from monitor.store.models import Base
from monitor.store.statements import dialect_insert, rowcount

_alerts: Final[Table] = Base.metadata.tables["alerts"]
_deliveries: Final[Table] = Base.metadata.tables["alert_deliveries"]
_channels: Final[Table] = Base.metadata.tables["channels"]
_rules: Final[Table] = Base.metadata.tables["alert_rules"]
_windows: Final[Table] = Base.metadata.tables["maintenance_windows"]
_mutes: Final[Table] = Base.metadata.tables["mutes"]

PENDING: Final = "pending"
SENDING: Final = "sending"
SENT: Final = "sent"
FAILED: Final = "failed"
OPEN: Final = "open"
RESOLVED: Final = "resolved"


# --- channels ---------------------------------------------------------------------------


@translates_errors("add channel")
async def add_channel(
    session: AsyncSession,
    *,
    name: str,
    url: str,
    description: str = "",
    replace: bool = False,
    now: datetime,
) -> Channel:
    """Store a channel; ``replace`` overwrites one of the same name (else ChannelExists)."""
    stmt = dialect_insert(session, _channels).values(
        name=name, url=url, description=description, created_at=now, updated_at=now
    )
    if replace:
        stmt = stmt.on_conflict_do_update(
            index_elements=[_channels.c.name],
            set_={"url": url, "description": description, "updated_at": now},
        )
    else:
        # DO NOTHING rather than catching a unique violation: on PostgreSQL a failed
        # statement aborts the caller's whole transaction.
        stmt = stmt.on_conflict_do_nothing(index_elements=[_channels.c.name])
    if rowcount(await session.execute(stmt)) != 1:
        raise ChannelExists(name)
    channel = await session.get(Channel, name, populate_existing=True)
    assert channel is not None
    return channel


@translates_errors("get channel")
async def get_channel(session: AsyncSession, *, name: str) -> Channel:
    channel = await session.get(Channel, name, populate_existing=True)
    if channel is None:
        raise ChannelNotFound(name)
    return channel


@translates_errors("list channels")
async def list_channels(session: AsyncSession) -> list[Channel]:
    stmt = select(Channel).order_by(Channel.name).execution_options(populate_existing=True)
    return list((await session.scalars(stmt)).all())


@translates_errors("remove channel")
async def remove_channel(session: AsyncSession, *, name: str) -> None:
    """Delete a channel. Rules naming it keep the name (it routes nowhere until re-added)."""
    if rowcount(await session.execute(delete(_channels).where(_channels.c.name == name))) == 0:
        raise ChannelNotFound(name)


@translates_errors("list channel names")
async def channel_names(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(_channels.c.name).order_by(_channels.c.name))).all())


# --- rules -------------------------------------------------------------------------------


def rule_from_row(row: AlertRule) -> Rule:
    return Rule(
        name=row.name,
        channels=tuple(row.channels),
        classes=frozenset(row.classes),
        tags=frozenset(row.tags),
        min_severity=Severity(row.min_severity),
        escalate_to=tuple(row.escalate_to),
        kind=row.kind,
        min_risk=row.min_risk,
    )


@translates_errors("save alert rule")
async def put_rule(session: AsyncSession, *, rule: Rule, now: datetime) -> AlertRule:
    """Create or replace a rule; every channel it names must exist."""
    if not rule.channels:
        raise InvalidRule(rule.name, "name at least one channel")
    known = set(await channel_names(session))
    missing = sorted((set(rule.channels) | set(rule.escalate_to)) - known)
    if missing:
        raise InvalidRule(rule.name, f"no such channel(s): {', '.join(missing)}")
    values: dict[str, Any] = {
        "classes": sorted(rule.classes),
        "tags": sorted(rule.tags),
        "min_severity": rule.min_severity.value,
        "channels": list(rule.channels),
        "escalate_to": list(rule.escalate_to),
        "kind": rule.kind,
        "min_risk": rule.min_risk,
        "updated_at": now,
    }
    stmt = dialect_insert(session, _rules).values(name=rule.name, created_at=now, **values)
    stmt = stmt.on_conflict_do_update(index_elements=[_rules.c.name], set_=values)
    await session.execute(stmt)
    saved = await session.get(AlertRule, rule.name, populate_existing=True)
    assert saved is not None
    return saved


@translates_errors("list alert rules")
async def list_rules(session: AsyncSession) -> list[AlertRule]:
    stmt = select(AlertRule).order_by(AlertRule.name).execution_options(populate_existing=True)
    return list((await session.scalars(stmt)).all())


@translates_errors("load alert rules")
async def load_rules(session: AsyncSession) -> list[Rule]:
    return [rule_from_row(row) for row in await list_rules(session)]


@translates_errors("remove alert rule")
async def remove_rule(session: AsyncSession, *, name: str) -> None:
    if rowcount(await session.execute(delete(_rules).where(_rules.c.name == name))) == 0:
        raise RuleNotFound(name)


# --- maintenance windows and mutes ------------------------------------------------------


def window_from_row(row: MaintenanceWindow) -> Window:
    scope = Scope.of(devices=row.devices, classes=row.classes, tags=row.tags)
    weekly = None
    if row.recurrence is not None:
        weekly = parse_every(
            row.recurrence, duration=timedelta(seconds=row.duration or 0), tz=row.timezone
        )
    return Window(row.id, scope, row.starts_at, row.ends_at, weekly, row.note)


def mute_from_row(row: Mute) -> QuietMute:
    return QuietMute(
        row.id,
        Scope.of(devices=row.devices, classes=row.classes, tags=row.tags),
        row.until,
        row.note,
    )


@translates_errors("add maintenance window")
async def add_window(session: AsyncSession, *, window: Window, now: datetime) -> MaintenanceWindow:
    """Store a window (its ``id`` is ignored; the database assigns one)."""
    weekly = window.weekly
    row = MaintenanceWindow(
        devices=sorted(window.scope.devices),
        classes=sorted(window.scope.classes),
        tags=sorted(window.scope.tags),
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        recurrence=weekly.spec() if weekly else None,
        duration=weekly.duration.total_seconds() if weekly else None,
        timezone=weekly.tz if weekly else "UTC",
        note=window.note,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


@translates_errors("list maintenance windows")
async def list_windows(
    session: AsyncSession, *, now: datetime, include_finished: bool = False
) -> list[MaintenanceWindow]:
    stmt = select(MaintenanceWindow).order_by(MaintenanceWindow.id)
    if not include_finished:
        stmt = stmt.where(or_(MaintenanceWindow.ends_at.is_(None), MaintenanceWindow.ends_at > now))
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("end maintenance window")
async def end_window(session: AsyncSession, *, window_id: int, now: datetime) -> None:
    """End a window now (a recurring one never recurs again). Ending an ended one is a no-op."""
    row = await session.get(MaintenanceWindow, window_id, populate_existing=True)
    if row is None:
        raise WindowNotFound(window_id)
    if row.ends_at is not None and row.ends_at <= now:
        return
    starts_at = row.starts_at
    if starts_at is not None and starts_at > now:
        # Never started: keep the row valid (ends after it starts) and never active.
        starts_at = now - timedelta(microseconds=1)
    await session.execute(
        update(_windows).where(_windows.c.id == window_id).values(ends_at=now, starts_at=starts_at)
    )


@translates_errors("add mute")
async def add_mute(
    session: AsyncSession, *, scope: Scope, until: datetime, note: str = "", now: datetime
) -> Mute:
    if until <= now:
        raise InvalidSchedule("a mute must end in the future", field="until")
    row = Mute(
        devices=sorted(scope.devices),
        classes=sorted(scope.classes),
        tags=sorted(scope.tags),
        until=until,
        note=note,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


@translates_errors("list mutes")
async def list_mutes(session: AsyncSession, *, now: datetime) -> list[Mute]:
    stmt = select(Mute).where(Mute.until > now).order_by(Mute.id)
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("end mute")
async def end_mute(session: AsyncSession, *, mute_id: int, now: datetime) -> None:
    result = await session.execute(
        update(_mutes).where(_mutes.c.id == mute_id, _mutes.c.until > now).values(until=now)
    )
    if rowcount(result) == 0 and await session.get(Mute, mute_id) is None:
        raise WindowNotFound(mute_id, "mute")


@translates_errors("load maintenance windows and mutes")
async def load_quiet(session: AsyncSession, *, now: datetime) -> Quiet:
    windows = tuple(window_from_row(w) for w in await list_windows(session, now=now))
    mutes = tuple(mute_from_row(m) for m in await list_mutes(session, now=now))
    return Quiet(windows, mutes)


# --- alerts: operator side ---------------------------------------------------------------


@translates_errors("list alerts")
async def list_alerts(
    session: AsyncSession,
    *,
    status: str | None = None,
    device_id: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> list[Alert]:
    """Alerts, newest first; ``status``: ``open`` or ``resolved``."""
    stmt = select(Alert).order_by(Alert.id.desc()).offset(offset).limit(limit)
    if status is not None:
        stmt = stmt.where(Alert.status == status)
    if device_id is not None:
        stmt = stmt.where(Alert.device_id == device_id)
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("get alert")
async def get_alert(session: AsyncSession, *, alert_id: int) -> Alert:
    alert = await session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        raise AlertNotFound(alert_id)
    return alert


@translates_errors("acknowledge alert")
async def acknowledge(session: AsyncSession, *, alert_id: int, by: str, now: datetime) -> Alert:
    """Acknowledge an alert: no more repeats or escalation. Raises if already acknowledged.

    Compare-and-set on ``acknowledged_at IS NULL``: the monitor's repeat/escalation
    pass updates the same row, and whichever commits second sees the other's change.
    """
    result = await session.execute(
        update(_alerts)
        .where(_alerts.c.id == alert_id, _alerts.c.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by=by[:128], updated_at=now)
    )
    alert = await get_alert(session, alert_id=alert_id)
    if rowcount(result) != 1:
        raise AlreadyAcknowledged(alert_id, alert.acknowledged_by)
    return alert


@translates_errors("snooze alert")
async def snooze(
    session: AsyncSession, *, alert_id: int, until: datetime | None, now: datetime
) -> Alert:
    """Pause repeats and escalation of one alert until ``until`` (None: un-snooze)."""
    await session.execute(
        update(_alerts).where(_alerts.c.id == alert_id).values(snoozed_until=until, updated_at=now)
    )
    return await get_alert(session, alert_id=alert_id)


@translates_errors("list deliveries")
async def list_deliveries(
    session: AsyncSession,
    *,
    state: str | None = None,
    alert_id: int | None = None,
    limit: int | None = 50,
) -> list[AlertDelivery]:
    stmt = select(AlertDelivery).order_by(AlertDelivery.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(AlertDelivery.state == state)
    if alert_id is not None:
        stmt = stmt.where(AlertDelivery.alert_id == alert_id)
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("count deliveries")
async def delivery_counts(session: AsyncSession) -> dict[str, int]:
    """Deliveries per state (pending, sending, sent, failed)."""
    rows = await session.execute(
        select(_deliveries.c.state, func.count()).group_by(_deliveries.c.state)
    )
    return {state: int(count) for state, count in rows}


@translates_errors("retry delivery")
async def retry_delivery(session: AsyncSession, *, delivery_id: int, now: datetime) -> bool:
    """Queue a given-up (``failed``) delivery again, at once; False if it was not failed."""
    result = await session.execute(
        update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _deliveries.c.state == FAILED)
        .values(state=PENDING, attempts=0, next_attempt_at=now)
    )
    return rowcount(result) == 1


# --- alerts: the monitor's side ----------------------------------------------------------


@translates_errors("insert alert")
async def insert_alert(session: AsyncSession, *, values: Mapping[str, Any]) -> int | None:
    """Insert an alert row; None when its ``key`` or ``open_key`` already exists.

    A retried insert (same ``key``) and a second open alert for the same device or
    incident (same ``open_key``, e.g. from a second replica) both do nothing.
    """
    stmt = (
        dialect_insert(session, _alerts)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(_alerts.c.id)
    )
    found = (await session.execute(stmt)).scalar_one_or_none()
    return None if found is None else int(found)


@translates_errors("find open alert")
async def find_open(session: AsyncSession, *, open_key: str) -> Alert | None:
    stmt = select(Alert).where(Alert.open_key == open_key)
    return (await session.scalars(stmt.execution_options(populate_existing=True))).first()


@translates_errors("update alert")
async def update_alert_if(
    session: AsyncSession,
    *,
    alert_id: int,
    expect: Mapping[str, Any],
    values: Mapping[str, Any],
) -> bool:
    """Compare-and-set: update the alert only if its columns still hold ``expect``.

    ``None`` in ``expect`` means IS NULL. Returns whether this call won.
    """
    conditions = [_alerts.c.id == alert_id]
    for column, value in expect.items():
        col = _alerts.c[column]
        conditions.append(col.is_(None) if value is None else col == value)
    result = await session.execute(update(_alerts).where(and_(*conditions)).values(**values))
    return rowcount(result) == 1


@translates_errors("resolve a forgotten device's alert")
async def resolve_forgotten(session: AsyncSession, *, device_id: str, now: datetime) -> int:
    """Resolve the device's open alerts without a notification; returns how many (0 to 2:
    its state alert and its at-risk alert).

    Its repeats and escalation stop with it (they only follow open alerts). Outage
    incidents naming the device keep it in their history.
    """
    result = await session.execute(
        update(_alerts)
        .where(
            _alerts.c.open_key.in_((f"device:{device_id}", f"at-risk:{device_id}")),
            _alerts.c.status == OPEN,
        )
        .values(
            status=RESOLVED,
            open_key=None,
            resolved_at=now,
            updated_at=now,
            reason="forgotten",
        )
    )
    return rowcount(result)


@translates_errors("load open alerts")
async def load_open_alerts(session: AsyncSession) -> list[Alert]:
    stmt = select(Alert).where(Alert.status == OPEN).order_by(Alert.id)
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("load follow-up candidates")
async def followup_candidates(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    repeat_every: float = 0.0,
    escalate_after: float = 0.0,
) -> list[Alert]:
    """Open, unacknowledged, critical alerts: the only ones that repeat or escalate.

    With ``now``, only those whose repeat or escalation may be due (the rest of the
    rules, in :mod:`monitor.alerts.followup`, are applied by the caller), so the pass
    stays cheap with thousands of open alerts.
    """
    stmt = select(Alert).where(
        Alert.status == OPEN,
        Alert.acknowledged_at.is_(None),
        Alert.severity == Severity.CRITICAL.value,
    )
    if now is not None:
        due = []
        if repeat_every > 0:
            due.append(Alert.last_notified_at <= now - timedelta(seconds=repeat_every))
        if escalate_after > 0:
            due.append(
                and_(
                    Alert.escalated_at.is_(None),
                    Alert.opened_at <= now - timedelta(seconds=escalate_after),
                )
            )
        if not due:
            return []
        stmt = stmt.where(or_(*due))
    stmt = stmt.order_by(Alert.id).execution_options(populate_existing=True)
    return list((await session.scalars(stmt)).all())


@dataclass(frozen=True, slots=True)
class NewDelivery:
    dedup_key: str
    alert_id: int
    channel: str
    event: str
    title: str
    body: str
    notify_type: str


@translates_errors("queue deliveries")
async def insert_deliveries(
    session: AsyncSession, *, rows: Iterable[NewDelivery], now: datetime
) -> int:
    """Queue notifications; a ``dedup_key`` already queued is skipped. Returns rows given."""
    params = [
        {
            "dedup_key": row.dedup_key[:255],
            "alert_id": row.alert_id,
            "channel": row.channel,
            "event": row.event,
            "title": row.title,
            "body": row.body,
            "notify_type": row.notify_type,
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for row in rows
    ]
    if not params:
        return 0
    stmt = dialect_insert(session, _deliveries).on_conflict_do_nothing(
        index_elements=[_deliveries.c.dedup_key]
    )
    await session.execute(stmt, params)
    return len(params)


# --- the outbox ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    alert_id: int
    channel: str
    url: str | None
    """None when the channel was removed after the notification was queued."""
    event: str
    title: str
    body: str
    notify_type: str
    attempts: int
    """Including this attempt."""


def _head_of_channel() -> Any:
    """The delivery is the oldest its channel has not finished with.

    Each channel is a queue: a newer notification waits while an older one to the same
    channel is pending (in its retry backoff) or being sent, so after an outage of the
    channel they arrive in the order they were decided ("is stale", "ESCALATED", "is
    now lost", "recovered"), never a recovery before the alert. Given-up deliveries
    (``failed``) no longer hold the queue.
    """
    d = _deliveries.c
    older = _deliveries.alias("older")
    return ~(
        select(older.c.id)
        .where(
            older.c.channel == d.channel,
            older.c.id < d.id,
            older.c.state.in_((PENDING, SENDING)),
        )
        .exists()
    )


def _claimable(now: datetime) -> Any:
    d = _deliveries.c
    return and_(
        or_(
            and_(d.state == PENDING, d.next_attempt_at <= now),
            # A claim whose lease ran out: its worker died (or hung) mid-send.
            and_(d.state == SENDING, d.claimed_until < now),
        ),
        _head_of_channel(),
    )


@translates_errors("claim deliveries")
async def claim_due(
    session: AsyncSession, *, now: datetime, token: str, lease: float, limit: int = 50
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` deliveries that are due; commit before sending them.

    At most one per channel (:func:`_head_of_channel`): the caller may send them all at
    once, and each channel still receives its notifications in order.

    Each claim is a compare-and-set: two monitor replicas, or a restarted monitor and
    the lease of its crashed predecessor, may pick the same row; the WHERE repeats the
    condition the row was selected by, so exactly one UPDATE matches it. (PostgreSQL's
    SKIP LOCKED would do too, but SQLite has no row locks.)
    """
    d = _deliveries.c
    ids = list(
        (
            await session.scalars(
                select(d.id).where(_claimable(now)).order_by(d.next_attempt_at, d.id).limit(limit)
            )
        ).all()
    )
    claimed: list[int] = []
    for delivery_id in ids:
        result = await session.execute(
            update(_deliveries)
            .where(d.id == delivery_id, _claimable(now))
            .values(
                state=SENDING,
                claimed_by=token,
                claimed_until=now + timedelta(seconds=lease),
                attempts=d.attempts + 1,
            )
        )
        if rowcount(result) == 1:
            claimed.append(delivery_id)
    if not claimed:
        return []
    rows = await session.execute(
        select(
            d.id,
            d.alert_id,
            d.channel,
            _channels.c.url,
            d.event,
            d.title,
            d.body,
            d.notify_type,
            d.attempts,
        )
        .select_from(_deliveries.outerjoin(_channels, _channels.c.name == d.channel))
        .where(d.id.in_(claimed))
        .order_by(d.id)
    )
    return [
        ClaimedDelivery(
            id=r.id,
            alert_id=r.alert_id,
            channel=r.channel,
            url=r.url,
            event=r.event,
            title=r.title,
            body=r.body,
            notify_type=r.notify_type,
            attempts=r.attempts,
        )
        for r in rows
    ]


@translates_errors("mark delivery sent")
async def mark_sent(session: AsyncSession, *, delivery_id: int, token: str, now: datetime) -> bool:
    """Record a delivery as sent; False if our claim was lost (the lease ran out)."""
    result = await session.execute(
        update(_deliveries)
        .where(
            _deliveries.c.id == delivery_id,
            _deliveries.c.state == SENDING,
            _deliveries.c.claimed_by == token,
        )
        .values(state=SENT, sent_at=now, claimed_by=None, claimed_until=None, last_error=None)
    )
    return rowcount(result) == 1


@translates_errors("mark delivery failed")
async def mark_failed(
    session: AsyncSession,
    *,
    delivery_id: int,
    token: str,
    error: str,
    retry_at: datetime | None,
) -> bool:
    """Record a failed attempt: retry at ``retry_at``, or give up (``failed``) if None."""
    values: dict[str, Any] = {
        "claimed_by": None,
        "claimed_until": None,
        "last_error": error[:1000],
    }
    if retry_at is None:
        values["state"] = FAILED
    else:
        values["state"] = PENDING
        values["next_attempt_at"] = retry_at
    result = await session.execute(
        update(_deliveries)
        .where(
            _deliveries.c.id == delivery_id,
            _deliveries.c.state == SENDING,
            _deliveries.c.claimed_by == token,
        )
        .values(**values)
    )
    return rowcount(result) == 1


@translates_errors("release delivery claims")
async def release_claims(session: AsyncSession, *, token: str, ids: Sequence[int]) -> None:
    """Give back claims not attempted (a clean shutdown), without counting an attempt."""
    if not ids:
        return
    await session.execute(
        update(_deliveries)
        .where(
            _deliveries.c.id.in_(list(ids)),
            _deliveries.c.state == SENDING,
            _deliveries.c.claimed_by == token,
        )
        .values(
            state=PENDING,
            claimed_by=None,
            claimed_until=None,
            attempts=_deliveries.c.attempts - 1,
        )
    )


@translates_errors("next delivery due")
async def next_due(session: AsyncSession) -> datetime | None:
    """When the earliest pending delivery is due (or a claim's lease runs out).

    Only the head of each channel's queue counts: one waiting behind an older delivery
    in backoff is not due before that one.
    """
    d = _deliveries.c
    head = _head_of_channel()
    pending = await session.scalar(
        select(func.min(d.next_attempt_at)).where(d.state == PENDING, head)
    )
    leased = await session.scalar(select(func.min(d.claimed_until)).where(d.state == SENDING, head))
    candidates = [t for t in (pending, leased) if t is not None]
    return min(candidates, default=None)

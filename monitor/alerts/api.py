"""The operator-facing alerting API: what the CLI and the HTTP API call.

Every function is ``async def f(session, *, ...)``; the caller opens the session and
commits (like the store's repository), so a request can combine several calls in one
transaction. ``now`` defaults to the current UTC time. Errors are
:class:`~monitor.alerts.errors.AlertingError` subclasses with structured attributes.

The running monitor picks changes up by itself within ``alert_poll_interval`` (1 s):
rules, channels, windows and mutes are re-read; acknowledgements and snoozes are read
by the repeat/escalation pass before it sends anything.

Channel URLs are secrets: :func:`channel_view` gives what may be shown (redacted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.alerts import repository
from monitor.alerts.errors import InvalidRule, InvalidSchedule
from monitor.alerts.levels import ALERTING_RISK_LEVELS, Severity
from monitor.alerts.messages import trial_message
from monitor.alerts.models import (
    Alert,
    AlertDelivery,
    AlertRule,
    Channel,
    MaintenanceWindow,
    Mute,
)
from monitor.alerts.notifier import AppriseNotifier, Notifier, check_url, redact
from monitor.alerts.routing import AT_RISK, RULE_KINDS, STATE, Rule
from monitor.alerts.schedule import Scope, Window, parse_every, zone

_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Read-only functions need no wrapper: re-exported as they are.
list_channels = repository.list_channels
remove_channel = repository.remove_channel
list_rules = repository.list_rules
remove_rule = repository.remove_rule
list_alerts = repository.list_alerts
get_alert = repository.get_alert
list_deliveries = repository.list_deliveries
delivery_counts = repository.delivery_counts
# What forgetting a device (monitor.ops.forget) does to its alerts, in its transaction.
resolve_forgotten = repository.resolve_forgotten


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def check_name(name: str, *, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidSchedule("1-64 characters of A-Z a-z 0-9 . _ -", field=f"{what} name")
    return name


# --- channels -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelView:
    name: str
    url: str
    """Redacted: passwords and tokens masked."""
    scheme: str
    description: str
    created_at: datetime


def channel_view(channel: Channel) -> ChannelView:
    scheme = channel.url.split("://", 1)[0] if "://" in channel.url else "?"
    return ChannelView(
        channel.name, redact(channel.url), scheme, channel.description, channel.created_at
    )


_URL_PARTS: Final = re.compile(r"[/:@?&=#,+]+")


def redact_error(text: str | None, url: str | None) -> str | None:
    """A delivery error with the channel URL's secrets masked, as :func:`redact` does.

    Errors often quote the URL a plugin called (a Telegram bot token sits in its path).
    The secrets are the parts of the URL that its redacted form leaves out.
    """
    if text is None or url is None:
        return text
    shown = redact(url)
    secrets = {p for p in _URL_PARTS.split(url) if len(p) >= 4 and p not in shown}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    alert_id: int
    channel: str
    event: str
    title: str
    state: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    """Redacted like channel URLs (:func:`redact_error`)."""


async def list_delivery_views(
    session: AsyncSession, *, state: str | None = None, limit: int = 50
) -> list[DeliveryView]:
    """Deliveries, newest first, as they may be shown (errors redacted)."""
    rows = await repository.list_deliveries(session, state=state, limit=limit)
    urls = {c.name: c.url for c in await repository.list_channels(session)}
    return [
        DeliveryView(
            d.id,
            d.alert_id,
            d.channel,
            d.event,
            d.title,
            d.state,
            d.attempts,
            d.next_attempt_at,
            d.created_at,
            d.sent_at,
            _shown_error(d.last_error, urls.get(d.channel)),
        )
        for d in rows
    ]


def _shown_error(text: str | None, url: str | None) -> str | None:
    if text is not None and url is None:
        return "(not shown: its channel was removed, so its secrets cannot be masked)"
    return redact_error(text, url)


async def add_channel(
    session: AsyncSession,
    *,
    name: str,
    url: str,
    description: str = "",
    replace: bool = False,
    now: datetime | None = None,
) -> Channel:
    """Add a channel (an apprise URL); ``replace`` updates an existing one of that name."""
    check_name(name, what="channel")
    check_url(name, url)
    return await repository.add_channel(
        session, name=name, url=url, description=description, replace=replace, now=_now(now)
    )


async def send_test_notification(
    session: AsyncSession, *, name: str, notifier: Notifier | None = None
) -> None:
    """Send a test notification to channel ``name`` now; raises DeliveryFailed."""
    channel = await repository.get_channel(session, name=name)
    message = trial_message(name)
    await (notifier or AppriseNotifier()).send(
        channel.url, title=message.title, body=message.body, notify_type=message.notify_type
    )


# --- rules ----------------------------------------------------------------------------------


async def put_rule(
    session: AsyncSession,
    *,
    name: str,
    channels: Iterable[str],
    classes: Iterable[str] = (),
    tags: Iterable[str] = (),
    min_severity: str = "critical",
    escalate_to: Iterable[str] = (),
    kind: str = STATE,
    min_risk: str | None = None,
    now: datetime | None = None,
) -> AlertRule:
    """Create or replace a routing rule (see :mod:`monitor.alerts.routing`).

    ``kind`` ``at-risk``: the rule asks for at-risk alerts of its devices from
    ``min_risk`` up (``elevated`` or ``high``, default ``high``) instead of routing
    state alerts.
    """
    check_name(name, what="rule")
    try:
        severity = Severity(min_severity)
    except ValueError as exc:
        raise InvalidRule(name, "min_severity is warning or critical") from exc
    if kind not in RULE_KINDS:
        raise InvalidRule(name, "kind is state or at-risk")
    if kind == AT_RISK:
        min_risk = min_risk or "high"
        if min_risk not in ALERTING_RISK_LEVELS:
            raise InvalidRule(name, "min_risk is elevated or high")
        if tuple(escalate_to):
            raise InvalidRule(name, "at-risk alerts are warnings and do not escalate")
    elif min_risk is not None:
        raise InvalidRule(name, "min_risk applies to rules of kind at-risk only")
    rule = Rule(
        name=name,
        channels=tuple(dict.fromkeys(channels)),
        classes=frozenset(classes),
        tags=frozenset(tags),
        min_severity=severity,
        escalate_to=tuple(dict.fromkeys(escalate_to)),
        kind=kind,
        min_risk=min_risk,
    )
    return await repository.put_rule(session, rule=rule, now=_now(now))


# --- alerts ---------------------------------------------------------------------------------


async def acknowledge(
    session: AsyncSession, *, alert_id: int, by: str, now: datetime | None = None
) -> Alert:
    """Acknowledge an alert: its repeats and escalation stop. Recovery is still notified."""
    return await repository.acknowledge(session, alert_id=alert_id, by=by, now=_now(now))


async def snooze(
    session: AsyncSession,
    *,
    alert_id: int,
    duration: timedelta | None,
    now: datetime | None = None,
) -> Alert:
    """Pause an alert's repeats and escalation for ``duration`` (None: resume now)."""
    at = _now(now)
    until = None if duration is None else at + duration
    return await repository.snooze(session, alert_id=alert_id, until=until, now=at)


async def retry_delivery(
    session: AsyncSession, *, delivery_id: int, now: datetime | None = None
) -> bool:
    """Queue a given-up delivery again; False if it was not in state ``failed``."""
    return await repository.retry_delivery(session, delivery_id=delivery_id, now=_now(now))


# --- maintenance windows and mutes ---------------------------------------------------------


def scope_of(
    *,
    devices: Iterable[str] = (),
    classes: Iterable[str] = (),
    tags: Iterable[str] = (),
    everything: bool = False,
) -> Scope:
    """A scope; an empty one must be asked for (``everything``) so it is never an accident."""
    scope = Scope.of(devices=devices, classes=classes, tags=tags)
    if scope.everything and not everything:
        raise InvalidSchedule(
            "name devices, classes or tags, or ask for all devices", field="scope"
        )
    if not scope.everything and everything:
        raise InvalidSchedule("all devices, or a list of them, not both", field="scope")
    return scope


async def add_maintenance(
    session: AsyncSession,
    *,
    scope: Scope,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    every: str | None = None,
    duration: timedelta | None = None,
    tz: str = "UTC",
    note: str = "",
    now: datetime | None = None,
) -> MaintenanceWindow:
    """A one-off window (``starts_at``..``ends_at``; ``starts_at`` defaults to now, or
    ``duration`` from it), or a recurring one (``every`` = ``"mon-fri 02:00"`` with
    ``duration``, in time zone ``tz``, optionally bounded by ``starts_at``/``ends_at``).
    """
    at = _now(now)
    zone(tz)
    weekly = None
    if every is not None:
        if duration is None:
            raise InvalidSchedule("a recurring window needs a duration", field="duration")
        weekly = parse_every(every, duration=duration, tz=tz)
    else:
        starts_at = starts_at or at
        if ends_at is None:
            if duration is None:
                raise InvalidSchedule("give an end or a duration", field="window")
            ends_at = starts_at + duration
        elif duration is not None:
            raise InvalidSchedule("give an end or a duration, not both", field="window")
        if ends_at <= at:
            raise InvalidSchedule("the window would end in the past", field="window")
    window = Window(0, scope, starts_at, ends_at, weekly, note)
    return await repository.add_window(session, window=window, now=at)


async def list_maintenance(
    session: AsyncSession, *, include_finished: bool = False, now: datetime | None = None
) -> list[MaintenanceWindow]:
    return await repository.list_windows(session, now=_now(now), include_finished=include_finished)


async def end_maintenance(
    session: AsyncSession, *, window_id: int, now: datetime | None = None
) -> None:
    """End a window now; a recurring one never recurs again."""
    await repository.end_window(session, window_id=window_id, now=_now(now))


async def add_mute(
    session: AsyncSession,
    *,
    scope: Scope,
    duration: timedelta,
    note: str = "",
    now: datetime | None = None,
) -> Mute:
    """Silence ``scope`` for ``duration`` from now (a snooze with an expiry)."""
    at = _now(now)
    return await repository.add_mute(session, scope=scope, until=at + duration, note=note, now=at)


async def list_mutes(session: AsyncSession, *, now: datetime | None = None) -> list[Mute]:
    return await repository.list_mutes(session, now=_now(now))


async def end_mute(session: AsyncSession, *, mute_id: int, now: datetime | None = None) -> None:
    await repository.end_mute(session, mute_id=mute_id, now=_now(now))


__all__ = [
    "AlertDelivery",
    "ChannelView",
    "acknowledge",
    "add_channel",
    "add_maintenance",
    "add_mute",
    "channel_view",
    "check_name",
    "delivery_counts",
    "end_maintenance",
    "end_mute",
    "get_alert",
    "list_alerts",
    "list_channels",
    "list_deliveries",
    "list_maintenance",
    "list_mutes",
    "list_rules",
    "put_rule",
    "remove_channel",
    "remove_rule",
    "retry_delivery",
    "scope_of",
    "send_test_notification",
    "snooze",
]

"""``clawbeat alerts|channels|rules|maintenance ...``: alerting from the command line.

Everything goes through :mod:`monitor.alerts.api` against the database the monitor
uses; the running monitor picks changes up within a second. Channel URLs are secrets:
they are accepted from a file or stdin as well as the command line, and only ever
printed redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.alerts import api
from monitor.alerts.errors import DeliveryFailed, InvalidSchedule
from monitor.alerts.models import Alert, MaintenanceWindow, Mute
from monitor.alerts.repository import window_from_row
from monitor.alerts.schedule import Scope, parse_duration, zone
from monitor.cli_common import add_database_option, db_session, settings_from
from monitor.cli_table import ago, print_table, when
from monitor.timefmt import format_duration

_T = TypeVar("_T")
_Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_alert_parsers(subparsers: _Sub) -> None:
    _add_alerts(subparsers)
    _add_channels(subparsers)
    _add_rules(subparsers)
    _add_maintenance(subparsers)


# --- plumbing ---------------------------------------------------------------------------


def _run(
    args: argparse.Namespace, action: Callable[[AsyncSession], Awaitable[_T]], *, commit: bool
) -> _T:
    async def run() -> _T:
        async with db_session(settings_from(args).database_url) as session:
            result = await action(session)
            if commit:
                await session.commit()
            return result

    return asyncio.run(run())


def _duration(text: str) -> Any:
    try:
        return parse_duration(text)
    except InvalidSchedule as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _scope_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", action="append", default=[], help="device id (repeatable)")
    p.add_argument("--class", dest="classes", action="append", default=[], help="device class")
    p.add_argument("--tag", action="append", default=[], help="device tag (repeatable)")
    p.add_argument("--all", dest="everything", action="store_true", help="the whole fleet")


def _scope(args: argparse.Namespace) -> Scope:
    return api.scope_of(
        devices=args.device, classes=args.classes, tags=args.tag, everything=args.everything
    )


# --- alerts -----------------------------------------------------------------------------


def _add_alerts(subparsers: _Sub) -> None:
    alerts = subparsers.add_parser("alerts", help="alerts: list, acknowledge, snooze, mute")
    sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="open alerts (or all, newest first)")
    p.add_argument("--all", action="store_true", help="resolved ones too")
    p.add_argument("--device", help="only this device's alerts")
    p.add_argument("--limit", type=int, default=50, help="at most this many (%(default)s)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_database_option(p)
    p.set_defaults(func=_list_alerts)

    p = sub.add_parser("ack", help="acknowledge an alert: stops its repeats and escalation")
    p.add_argument("alert_id", type=int)
    p.add_argument("--by", help="who acknowledges (default: your user name)")
    add_database_option(p)
    p.set_defaults(func=_ack)

    p = sub.add_parser("snooze", help="pause an alert's repeats and escalation for a while")
    p.add_argument("alert_id", type=int)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--for", dest="duration", type=_duration, help="e.g. 30m, 2h")
    group.add_argument("--off", action="store_true", help="end the snooze now")
    add_database_option(p)
    p.set_defaults(func=_snooze)

    p = sub.add_parser("deliveries", help="notifications per channel: pending, sent, failed")
    p.add_argument("--state", choices=["pending", "sending", "sent", "failed"])
    p.add_argument("--alert", type=int, help="only this alert's")
    p.add_argument("--limit", type=int, default=50, help="at most this many (%(default)s)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_database_option(p)
    p.set_defaults(func=_deliveries)

    p = sub.add_parser("retry", help="queue a failed (given up) delivery again")
    p.add_argument("delivery_id", type=int)
    add_database_option(p)
    p.set_defaults(func=_retry)

    p = sub.add_parser("mute", help="silence devices, classes or tags for a while")
    _scope_options(p)
    p.add_argument("--for", dest="duration", type=_duration, required=True, help="e.g. 1h")
    p.add_argument("--note", default="", help="why")
    add_database_option(p)
    p.set_defaults(func=_mute)

    p = sub.add_parser("mutes", help="active mutes")
    add_database_option(p)
    p.set_defaults(func=_mutes)

    p = sub.add_parser("unmute", help="end a mute now")
    p.add_argument("mute_id", type=int)
    add_database_option(p)
    p.set_defaults(func=_unmute)


def _alert_row(a: Alert, now: datetime) -> tuple[str, ...]:
    ack = f"{a.acknowledged_by or '?'} {ago(a.acknowledged_at, now)}" if a.acknowledged_at else ""
    flags = []
    if a.flapping:
        flags.append("flapping")
    if a.escalated_at:
        flags.append("escalated")
    if a.repeats:
        flags.append(f"repeated {a.repeats}x")
    if a.snoozed_until and a.snoozed_until > now:
        flags.append(f"snoozed until {when(a.snoozed_until)}")
    return (
        str(a.id),
        a.status,
        a.severity,
        a.title,
        ago(a.opened_at, now),
        ack,
        ",".join(a.channels) or "-",
        " ".join(flags),
    )


def _list_alerts(args: argparse.Namespace) -> int:
    status = None if args.all else "open"
    alerts = _run(
        args,
        lambda s: api.list_alerts(s, status=status, device_id=args.device, limit=args.limit),
        commit=False,
    )
    now = datetime.now(UTC)
    if args.json:
        for a in alerts:
            print(
                json.dumps(
                    {
                        "id": a.id,
                        "status": a.status,
                        "kind": a.kind,
                        "severity": a.severity,
                        "device": a.device_id,
                        "state": a.state,
                        "title": a.title,
                        "opened_at": a.opened_at.isoformat(),
                        "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                        "acknowledged_by": a.acknowledged_by,
                        "acknowledged_at": a.acknowledged_at.isoformat()
                        if a.acknowledged_at
                        else None,
                        "flapping": a.flapping,
                        "repeats": a.repeats,
                        "escalated": a.escalated_at is not None,
                        "channels": a.channels,
                        "details": a.details,
                    }
                )
            )
        return 0
    if not alerts:
        print("no open alerts" if status else "no alerts")
        return 0
    print_table(
        ("ID", "STATUS", "SEVERITY", "ALERT", "OPENED", "ACKNOWLEDGED", "CHANNELS", ""),
        [_alert_row(a, now) for a in alerts],
    )
    return 0


def _ack(args: argparse.Namespace) -> int:
    by = args.by or getpass.getuser()
    alert = _run(args, lambda s: api.acknowledge(s, alert_id=args.alert_id, by=by), commit=True)
    print(f"alert #{alert.id} ({alert.title}) acknowledged by {by}")
    return 0


def _snooze(args: argparse.Namespace) -> int:
    duration = None if args.off else args.duration
    alert = _run(
        args, lambda s: api.snooze(s, alert_id=args.alert_id, duration=duration), commit=True
    )
    if alert.snoozed_until is None:
        print(f"alert #{alert.id}: snooze ended")
    else:
        print(f"alert #{alert.id} snoozed until {when(alert.snoozed_until)}")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    async def fetch(session: AsyncSession) -> tuple[list[Any], dict[str, int]]:
        rows = await api.list_deliveries(
            session, state=args.state, alert_id=args.alert, limit=args.limit
        )
        return rows, await api.delivery_counts(session)

    rows, counts = _run(args, fetch, commit=False)
    if args.json:
        for d in rows:
            print(
                json.dumps(
                    {
                        "id": d.id,
                        "alert": d.alert_id,
                        "channel": d.channel,
                        "event": d.event,
                        "title": d.title,
                        "state": d.state,
                        "attempts": d.attempts,
                        "next_attempt_at": d.next_attempt_at.isoformat(),
                        "sent_at": d.sent_at.isoformat() if d.sent_at else None,
                        "last_error": d.last_error,
                    }
                )
            )
        return 0
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("pending", "sending", "sent", "failed"))
    print(f"deliveries: {summary}")
    print_table(
        ("ID", "ALERT", "CHANNEL", "EVENT", "STATE", "ATTEMPTS", "NEXT/SENT", "LAST ERROR"),
        [
            (
                str(d.id),
                str(d.alert_id),
                d.channel,
                d.event,
                d.state,
                str(d.attempts),
                when(d.sent_at) if d.state == "sent" else when(d.next_attempt_at),
                (d.last_error or "")[:80],
            )
            for d in rows
        ],
    )
    return 0


def _retry(args: argparse.Namespace) -> int:
    done = _run(args, lambda s: api.retry_delivery(s, delivery_id=args.delivery_id), commit=True)
    if not done:
        print(f"delivery {args.delivery_id} is not in state failed", file=sys.stderr)
        return 1
    print(f"delivery {args.delivery_id} queued again")
    return 0


def _mute(args: argparse.Namespace) -> int:
    scope = _scope(args)
    mute = _run(
        args,
        lambda s: api.add_mute(s, scope=scope, duration=args.duration, note=args.note),
        commit=True,
    )
    print(f"mute #{mute.id}: {scope.describe()} silenced until {when(mute.until)}")
    return 0


def _mute_row(m: Mute) -> tuple[str, ...]:
    scope = Scope.of(devices=m.devices, classes=m.classes, tags=m.tags)
    return (str(m.id), scope.describe(), when(m.until), m.note)


def _mutes(args: argparse.Namespace) -> int:
    mutes = _run(args, api.list_mutes, commit=False)
    if not mutes:
        print("no active mutes")
        return 0
    print_table(("ID", "SILENCES", "UNTIL", "NOTE"), [_mute_row(m) for m in mutes])
    return 0


def _unmute(args: argparse.Namespace) -> int:
    _run(args, lambda s: api.end_mute(s, mute_id=args.mute_id), commit=True)
    print(f"mute #{args.mute_id} ended")
    return 0


# --- channels -----------------------------------------------------------------------------


def _add_channels(subparsers: _Sub) -> None:
    channels = subparsers.add_parser(
        "channels", help="notification channels (apprise URLs: mailto://, slack://, json://...)"
    )
    sub = channels.add_subparsers(dest="channels_command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "add",
        help="add a channel: a name and an apprise URL",
        description="URL examples: mailtos://user:pass@smtp.example.com?to=ops@example.com, "
        "slack://TokenA/TokenB/TokenC/#ops, ntfy://ntfy.sh/topic, tgram://bot/chat, "
        "pagerduty://key@routing, jsons://hooks.example.com/clawbeat. The URL holds "
        "secrets: prefer --url-file (or '-' to read it from stdin) over the command line.",
    )
    p.add_argument("name")
    p.add_argument("url", nargs="?", help="the apprise URL, or '-' for stdin")
    p.add_argument("--url-file", type=Path, help="read the URL from this file")
    p.add_argument("--description", default="")
    p.add_argument("--replace", action="store_true", help="overwrite a channel of that name")
    add_database_option(p)
    p.set_defaults(func=_add_channel)

    p = sub.add_parser("list", help="channels, with their URLs redacted")
    add_database_option(p)
    p.set_defaults(func=_list_channels)

    p = sub.add_parser("test", help="send a test notification through a channel now")
    p.add_argument("name")
    add_database_option(p)
    p.set_defaults(func=_test_channel)

    p = sub.add_parser("remove", help="delete a channel")
    p.add_argument("name")
    add_database_option(p)
    p.set_defaults(func=_remove_channel)


def _add_channel(args: argparse.Namespace) -> int:
    if args.url_file is not None:
        url = args.url_file.read_text().strip()
    elif args.url in (None, "-"):
        url = sys.stdin.readline().strip()
    else:
        url = args.url
    channel = _run(
        args,
        lambda s: api.add_channel(
            s, name=args.name, url=url, description=args.description, replace=args.replace
        ),
        commit=True,
    )
    print(f"channel {channel.name!r} saved: {api.channel_view(channel).url}")
    return 0


def _list_channels(args: argparse.Namespace) -> int:
    channels = _run(args, api.list_channels, commit=False)
    if not channels:
        print("no channels: add one with `clawbeat channels add NAME URL`")
        return 0
    views = [api.channel_view(c) for c in channels]
    print_table(
        ("CHANNEL", "TYPE", "URL (redacted)", "DESCRIPTION"),
        [(v.name, v.scheme, v.url, v.description) for v in views],
    )
    return 0


def _test_channel(args: argparse.Namespace) -> int:
    try:
        _run(args, lambda s: api.send_test_notification(s, name=args.name), commit=False)
    except DeliveryFailed as exc:
        print(f"channel {args.name!r}: test notification failed: {exc}", file=sys.stderr)
        return 1
    print(f"channel {args.name!r}: test notification sent")
    return 0


def _remove_channel(args: argparse.Namespace) -> int:
    _run(args, lambda s: api.remove_channel(s, name=args.name), commit=True)
    print(f"channel {args.name!r} removed")
    return 0


# --- rules ----------------------------------------------------------------------------------


def _add_rules(subparsers: _Sub) -> None:
    rules = subparsers.add_parser(
        "rules",
        help="route alerts by class, tag and severity to channels",
        description="An alert goes to the channels of every rule that matches its device "
        "(class, tags: empty matches all) and severity. With no rules at all, every channel "
        "gets critical alerts. A rule of --kind at-risk (opt-in) instead asks for one "
        "warning when a device's risk level reaches --min-risk: resolved when the risk "
        "falls back, or silently when the device goes down and its state alert takes over.",
    )
    sub = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    p = sub.add_parser("add", help="create or replace a rule")
    p.add_argument("name")
    p.add_argument("--channel", action="append", required=True, help="channel (repeatable)")
    p.add_argument("--class", dest="classes", action="append", default=[], help="device class")
    p.add_argument("--tag", action="append", default=[], help="device tag (any of them)")
    p.add_argument(
        "--min-severity",
        choices=["warning", "critical"],
        default="critical",
        help="warning also routes late devices (with CLAWBEAT_ALERT_LATE) (%(default)s)",
    )
    p.add_argument(
        "--escalate-to",
        action="append",
        default=[],
        help="channel notified when an alert is not acknowledged in time (repeatable)",
    )
    p.add_argument(
        "--kind",
        choices=["state", "at-risk"],
        default="state",
        help="state: route down/late alerts; at-risk: alert devices the risk scorer flags "
        "before they go down (%(default)s)",
    )
    p.add_argument(
        "--min-risk",
        choices=["elevated", "high"],
        default=None,
        help="--kind at-risk: the lowest risk level alerted on (default high)",
    )
    add_database_option(p)
    p.set_defaults(func=_add_rule)

    p = sub.add_parser("list", help="rules")
    add_database_option(p)
    p.set_defaults(func=_list_rules)

    p = sub.add_parser("remove", help="delete a rule")
    p.add_argument("name")
    add_database_option(p)
    p.set_defaults(func=_remove_rule)


def _add_rule(args: argparse.Namespace) -> int:
    rule = _run(
        args,
        lambda s: api.put_rule(
            s,
            name=args.name,
            channels=args.channel,
            classes=args.classes,
            tags=args.tag,
            min_severity=args.min_severity,
            escalate_to=args.escalate_to,
            kind=args.kind,
            min_risk=args.min_risk,
        ),
        commit=True,
    )
    print(f"rule {rule.name!r} saved")
    return 0


def _list_rules(args: argparse.Namespace) -> int:
    rules = _run(args, api.list_rules, commit=False)
    if not rules:
        print("no rules: every channel receives critical alerts")
        return 0
    print_table(
        ("RULE", "KIND", "CLASSES", "TAGS", "MIN SEVERITY", "CHANNELS", "ESCALATE TO"),
        [
            (
                r.name,
                r.kind if r.min_risk is None else f"{r.kind} ({r.min_risk}+)",
                ",".join(r.classes) or "any",
                ",".join(r.tags) or "any",
                r.min_severity if r.kind == "state" else "-",
                ",".join(r.channels),
                ",".join(r.escalate_to) or "-",
            )
            for r in rules
        ],
    )
    return 0


def _remove_rule(args: argparse.Namespace) -> int:
    _run(args, lambda s: api.remove_rule(s, name=args.name), commit=True)
    print(f"rule {args.name!r} removed")
    return 0


# --- maintenance ------------------------------------------------------------------------------


def _add_maintenance(subparsers: _Sub) -> None:
    maint = subparsers.add_parser(
        "maintenance",
        help="maintenance windows: no alerts for the devices they cover",
        description="One-off: --for 2h (from now), or --start/--end (ISO 8601; without a "
        "zone, in --tz). Recurring: --every 'mon-fri 02:00' --for 2h [--tz Europe/Berlin]; "
        "days are mon..sun, ranges (mon-fri), lists (sat,sun) or 'daily'. A device"
        " that went down inside a window and is still down when it ends is alerted then.",
    )
    sub = maint.add_subparsers(dest="maintenance_command", required=True, metavar="COMMAND")
    p = sub.add_parser("add", help="add a window")
    _scope_options(p)
    p.add_argument("--start", help="ISO 8601 (default: now)")
    p.add_argument("--end", help="ISO 8601")
    p.add_argument("--for", dest="duration", type=_duration, help="length, e.g. 2h, 45m")
    p.add_argument("--every", help="recurring: 'DAYS HH:MM', e.g. 'mon-fri 02:00', 'daily 23:30'")
    p.add_argument("--tz", default="UTC", help="time zone of --every and of zone-less times")
    p.add_argument("--note", default="", help="why")
    add_database_option(p)
    p.set_defaults(func=_add_window)

    p = sub.add_parser("list", help="current and future windows")
    p.add_argument("--all", action="store_true", help="finished ones too")
    add_database_option(p)
    p.set_defaults(func=_list_windows)

    p = sub.add_parser("end", help="end a window now (a recurring one for good)")
    p.add_argument("window_id", type=int)
    add_database_option(p)
    p.set_defaults(func=_end_window)


def _time(text: str | None, tz: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidSchedule(f"{text!r} is not an ISO 8601 time", field="time") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    return value.astimezone(UTC)


def _add_window(args: argparse.Namespace) -> int:
    scope = _scope(args)
    starts_at, ends_at = _time(args.start, args.tz), _time(args.end, args.tz)
    window = _run(
        args,
        lambda s: api.add_maintenance(
            s,
            scope=scope,
            starts_at=starts_at,
            ends_at=ends_at,
            every=args.every,
            duration=args.duration,
            tz=args.tz,
            note=args.note,
        ),
        commit=True,
    )
    print(f"maintenance window #{window.id}: {_describe_window(window)}")
    return 0


def _describe_window(w: MaintenanceWindow) -> str:
    scope = Scope.of(devices=w.devices, classes=w.classes, tags=w.tags).describe()
    if w.recurrence:
        span = f"every {w.recurrence} {w.timezone} for {format_duration(w.duration or 0)}"
        if w.ends_at:
            span += f", until {when(w.ends_at)}"
    else:
        span = f"{when(w.starts_at)} .. {when(w.ends_at)}"
    return f"{scope}, {span}"


def _list_windows(args: argparse.Namespace) -> int:
    windows = _run(args, lambda s: api.list_maintenance(s, include_finished=args.all), commit=False)
    if not windows:
        print("no maintenance windows")
        return 0
    now = datetime.now(UTC)
    rows = []
    for w in windows:
        active = "-"
        try:
            active = "active" if window_from_row(w).active(now) else ""
        except InvalidSchedule:
            active = "invalid"
        rows.append((str(w.id), active, _describe_window(w), w.note))
    print_table(("ID", "NOW", "WINDOW", "NOTE"), rows)
    return 0


def _end_window(args: argparse.Namespace) -> int:
    _run(args, lambda s: api.end_maintenance(s, window_id=args.window_id), commit=True)
    print(f"maintenance window #{args.window_id} ended")
    return 0

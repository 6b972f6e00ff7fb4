"""What notifications say: titles, bodies and the MQTT alert event. Pure.

Every title starts with ``[clawbeat]`` so mail filters and chat rules can catch them;
bodies of open alerts end with how to acknowledge them, those of resolved ones say so
(there is nothing left to acknowledge). Device lists are capped so an outage of a
hundred thousand devices still fits a chat message.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from monitor.alerts.core import DeviceState, Event
from monitor.alerts.levels import Severity
from monitor.timefmt import format_duration, iso

PREFIX: Final = "[clawbeat]"
LIST_LIMIT: Final = 10


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    notify_type: str
    """apprise's notification type: info, success, warning or failure."""


def _type(event: Event, severity: Severity | None) -> str:
    if event in (
        Event.RECOVERED,
        Event.STABLE,
        Event.OUTAGE_OVER,
        Event.RECOVERIES,
        Event.RISK_CLEARED,
    ):
        return "success"
    if event is Event.TEST:
        return "info"
    return "failure" if severity is Severity.CRITICAL else "warning"


def _ack(alert_id: int) -> str:
    return f"Alert #{alert_id}. Acknowledge: clawbeat alerts ack {alert_id}"


def _resolved(alert_id: int) -> str:
    return f"Alert #{alert_id} is resolved."


def _describe(device: DeviceState) -> str:
    reason = f" ({device.reason})" if device.reason else ""
    return f"{device.state}{reason} since {iso(device.at_wall)}"


def _names(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:LIST_LIMIT])
    more = len(ids) - LIST_LIMIT
    return f"{shown} and {more} more" if more > 0 else shown


def device_summary(device: DeviceState, *, flapping: bool = False) -> str:
    if flapping:
        return f"{device.device_id} is flapping"
    return f"{device.device_id} is {device.state}"


def device_message(
    event: Event,
    *,
    alert_id: int,
    device: DeviceState,
    severity: Severity,
    changes: int = 0,
    flap_window: float = 0.0,
    down_since: float | None = None,
    resolved: bool = False,
    never_seen: bool = False,
) -> Message:
    """Opened, worse, recovered, flapping, stable: one device's alert.

    ``resolved``: the message resolves the alert (a recovery, or stable while up).
    """
    cls = device.context.device_class
    where = f"{device.device_id} (class {cls})"
    if event is Event.RECOVERED:
        took = ""
        if down_since is not None:
            took = f" after {format_duration(device.at_wall - down_since)}"
        title = f"{PREFIX} {device.device_id} recovered"
        body = f"{where} is {device.state} again{took}."
    elif event is Event.FLAPPING:
        title = f"{PREFIX} {device.device_id} is flapping"
        body = (
            f"{where} changed state {changes} times within {format_duration(flap_window)}; "
            f"now {_describe(device)}. Further changes are not alerted until it has been "
            f"stable for {format_duration(flap_window)}."
        )
    elif event is Event.STABLE:
        title = f"{PREFIX} {device.device_id} stopped flapping: {device.state}"
        body = f"{where} has been stable for {format_duration(flap_window)}: {_describe(device)}."
    elif event is Event.WORSE:
        title = f"{PREFIX} {device.device_id} is now {device.state}"
        body = f"{where} is {_describe(device)}. Severity {severity}."
    else:
        title = f"{PREFIX} {device.device_id} is {device.state}"
        body = f"{where} is {_describe(device)}. Severity {severity}."
        if never_seen:
            body += (
                " This database never saw it alive: only messages the broker retained "
                "from before know of it, so nobody is paged for it (a rule with "
                "--min-severity warning routes such alerts)."
            )
    footer = _resolved(alert_id) if resolved or event is Event.RECOVERED else _ack(alert_id)
    return Message(title, f"{body}\n{footer}", _type(event, severity))


def risk_reason(reasons: Sequence[str]) -> str:
    return "; ".join(reasons) if reasons else "heartbeat pattern of a device about to drop off"


def risk_summary(device_id: str, level: str) -> str:
    return f"{device_id} is at risk ({level})"


def at_risk_message(
    *, alert_id: int, device: DeviceState, level: str, reasons: Sequence[str]
) -> Message:
    """A device the risk scorer flagged (core A11): a warning, before it goes down."""
    where = f"{device.device_id} (class {device.context.device_class})"
    title = f"{PREFIX} {risk_summary(device.device_id, level)}: {risk_reason(reasons)}"
    body = (
        f"{where} is still {device.state}, but its heartbeat pattern puts it at {level} "
        f"risk of going down: {risk_reason(reasons)}. Severity warning; this alert "
        "resolves by itself when the risk falls back or the device goes down (then its "
        "state alert takes over)."
    )
    return Message(title, f"{body}\n{_ack(alert_id)}", "warning")


def risk_cleared_message(*, alert_id: int, device: DeviceState, opened: float | None) -> Message:
    took = "" if opened is None else f" after {format_duration(device.at_wall - opened)}"
    title = f"{PREFIX} {device.device_id} is no longer at risk"
    body = f"{device.device_id} (class {device.context.device_class}) is no longer at risk{took}."
    return Message(title, f"{body}\n{_resolved(alert_id)}", "success")


def outage_summary(count: int) -> str:
    return f"outage: {count} device{'s' if count != 1 else ''} down"


def outage_message(
    *, alert_id: int, devices: Sequence[DeviceState], first_wall: float, at_wall: float
) -> Message:
    count = len(devices)
    states = Counter(
        f"{d.state} ({d.reason})" if d.reason else d.state for d in devices
    ).most_common()
    spread = format_duration(max(d.at_wall for d in devices) - min(d.at_wall for d in devices))
    body = (
        f"{count} devices went down within {spread} (from {iso(first_wall)}): "
        + ", ".join(f"{n} {s}" for s, n in states)
        + ". A broker, network or power outage is likely; devices dropping now join this "
        "incident instead of alerting one by one.\n"
        f"Devices: {_names(sorted(d.device_id for d in devices))}.\n"
        f"(decided {iso(at_wall)})\n{_ack(alert_id)}"
    )
    return Message(f"{PREFIX} {outage_summary(count)}", body, "failure")


def outage_over_message(
    *, alert_id: int, total: int, recovered: int, still_down: Sequence[str], duration: float
) -> Message:
    if not still_down:
        title = f"{PREFIX} outage over: all {total} devices back"
        body = (
            f"All {total} devices of alert #{alert_id} are back after {format_duration(duration)}."
        )
    else:
        title = f"{PREFIX} outage over: {recovered} of {total} devices back"
        body = (
            f"{recovered} of {total} devices of alert #{alert_id} are back after "
            f"{format_duration(duration)}. Still down, alerted on their own: "
            f"{_names(sorted(still_down))}."
        )
    return Message(title, body, "success")


def recoveries_message(*, alert_id: int, devices: Sequence[DeviceState]) -> Message:
    count = len(devices)
    title = f"{PREFIX} {count} devices recovered"
    body = (
        f"{count} devices are back online: {_names(sorted(d.device_id for d in devices))}.\n"
        f"Their alerts are resolved (summary: alert #{alert_id})."
    )
    return Message(title, body, "success")


def repeat_message(
    *, alert_id: int, summary: str, body: str, number: int, open_for: float
) -> Message:
    title = f"{PREFIX} reminder {number}: {summary}"
    text = f"Still open and unacknowledged after {format_duration(open_for)}.\n{body}"
    if _ack(alert_id) not in text:
        text = f"{text}\n{_ack(alert_id)}"
    return Message(title, text, "failure")


def escalation_message(*, alert_id: int, summary: str, body: str, open_for: float) -> Message:
    title = f"{PREFIX} ESCALATED: {summary}"
    text = f"Not acknowledged within {format_duration(open_for)}; escalated to you.\n{body}"
    if _ack(alert_id) not in text:
        text = f"{text}\n{_ack(alert_id)}"
    return Message(title, text, "failure")


def trial_message(channel: str) -> Message:
    return Message(
        f"{PREFIX} test notification",
        f"This is a test of the clawbeat channel {channel!r}. If you can read it, alerts "
        "routed to this channel will reach you.",
        "info",
    )


def event_payload(
    *,
    alert_id: int,
    event: Event,
    kind: str,
    severity: str,
    status: str,
    title: str,
    message: str,
    at_wall: float,
    device: DeviceState | None = None,
    channels: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON published (not retained) on ``{root}/alerts`` for every notification."""
    body: dict[str, Any] = {
        "alert": alert_id,
        "event": event.value,
        "kind": kind,
        "severity": severity,
        "status": status,
        "device": device.device_id if device else None,
        "state": device.state if device else None,
        "reason": device.reason if device else None,
        "class": device.context.device_class if device else None,
        "title": title,
        "message": message,
        "channels": list(channels),
        "at": iso(at_wall),
    }
    if extra:
        body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()

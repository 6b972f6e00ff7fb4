"""Repeat/escalation timing (followup.py), delivery retry backoff (retry.py), messages."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.core import DeviceContext, DeviceState, Event
from monitor.alerts.followup import (
    FollowUp,
    FollowUpKind,
    FollowUpView,
    due_followups,
    next_followup_at,
)
from monitor.alerts.levels import Severity
from monitor.alerts.messages import (
    device_message,
    event_payload,
    outage_message,
    outage_over_message,
    repeat_message,
)
from monitor.alerts.retry import RetryPolicy

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


VIEW = FollowUpView(
    alert_id=7,
    severity=Severity.CRITICAL,
    opened_at=T0,
    last_notified_at=T0,
    repeats=0,
    escalated=False,
    has_escalation=True,
)


def due(view: FollowUpView, seconds: float) -> list[FollowUp]:
    return due_followups(view, at(seconds), repeat_every=60, escalate_after=30)


def test_escalation_then_repeats_step_by_step() -> None:
    view = VIEW
    assert due(view, 29.9) == []
    assert due(view, 30) == [FollowUp(FollowUpKind.ESCALATE, 7, 1)]
    view = replace(view, escalated=True)
    assert due(view, 59.9) == []
    assert due(view, 60) == [FollowUp(FollowUpKind.REPEAT, 7, 1)]
    view = replace(view, repeats=1, last_notified_at=at(60))
    assert due(view, 119) == []
    assert due(view, 120) == [FollowUp(FollowUpKind.REPEAT, 7, 2)]
    assert next_followup_at(view, repeat_every=60, escalate_after=30) == at(120)


def test_both_due_at_once_escalation_comes_first() -> None:
    assert [f.kind for f in due(VIEW, 600)] == [FollowUpKind.ESCALATE, FollowUpKind.REPEAT]


@pytest.mark.parametrize(
    "change",
    [
        {"acknowledged": True},
        {"severity": Severity.WARNING},
        {"flapping": True},
        {"silenced": True},
        {"snoozed_until": T0 + timedelta(hours=1)},
    ],
)
def test_nothing_follows_up_an_acknowledged_warning_flapping_silenced_or_snoozed_alert(
    change: dict[str, object],
) -> None:
    assert due(replace(VIEW, **change), 10_000 if "snoozed_until" not in change else 600) == []  # type: ignore[arg-type]


def test_snooze_ends_and_zero_disables() -> None:
    snoozed = replace(VIEW, snoozed_until=at(100))
    assert due(snoozed, 100) != []
    assert due_followups(VIEW, at(10_000), repeat_every=0, escalate_after=0) == []
    no_targets = replace(VIEW, has_escalation=False)
    assert [f.kind for f in due(no_targets, 600)] == [FollowUpKind.REPEAT]
    assert (
        next_followup_at(replace(VIEW, acknowledged=True), repeat_every=60, escalate_after=30)
        is None
    )


def test_retry_backoff_is_exponential_capped_and_gives_up() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, max_attempts=5)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.delay(3, jitter=1.2) == pytest.approx(4.8)
    assert policy.delay(5, jitter=1.2) == 10.0  # jitter never exceeds the cap
    assert policy.delay(1000) == 10.0
    assert not policy.gives_up(4)
    assert policy.gives_up(5)
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy(base=5, cap=1)


DEVICE = DeviceState(
    "pump-7", "offline", "connection-lost", T0.timestamp(), DeviceContext("critical")
)


def test_device_messages_say_what_happened_and_how_to_acknowledge() -> None:
    down = device_message(Event.DOWN, alert_id=12, device=DEVICE, severity=Severity.CRITICAL)
    assert down.title == "[clawbeat] pump-7 is offline"
    assert (
        "pump-7 (class critical) is offline (connection-lost) since 2026-11-25T10:00" in down.body
    )
    assert "clawbeat alerts ack 12" in down.body
    assert down.notify_type == "failure"
    back = replace(DEVICE, state="online", reason="presence-online", at_wall=T0.timestamp() + 200)
    rec = device_message(
        Event.RECOVERED,
        alert_id=12,
        device=back,
        severity=Severity.CRITICAL,
        down_since=T0.timestamp(),
    )
    assert rec.title == "[clawbeat] pump-7 recovered"
    assert "after 3m20s" in rec.body
    assert rec.notify_type == "success"
    flap = device_message(
        Event.FLAPPING,
        alert_id=3,
        device=DEVICE,
        severity=Severity.CRITICAL,
        changes=7,
        flap_window=600,
    )
    assert "changed state 7 times within 10m" in flap.body
    reminder = repeat_message(
        alert_id=12, summary="pump-7 is offline", body=down.body, number=2, open_for=7200
    )
    assert reminder.title == "[clawbeat] reminder 2: pump-7 is offline"
    assert reminder.body.count("clawbeat alerts ack 12") == 1


def test_outage_messages_count_and_cap_the_device_list() -> None:
    devices = [
        replace(DEVICE, device_id=f"sim-{i:05d}", at_wall=T0.timestamp() + i / 100)
        for i in range(500)
    ]
    msg = outage_message(
        alert_id=4, devices=devices, first_wall=T0.timestamp(), at_wall=T0.timestamp() + 10
    )
    assert msg.title == "[clawbeat] outage: 500 devices down"
    assert "500 devices went down within 5s" in msg.body
    assert "500 offline (connection-lost)" in msg.body
    assert "sim-00009 and 490 more" in msg.body
    over = outage_over_message(
        alert_id=4, total=500, recovered=498, still_down=["b", "a"], duration=80
    )
    assert over.title == "[clawbeat] outage over: 498 of 500 devices back"
    assert "Still down, alerted on their own: a, b." in over.body


def test_the_mqtt_event_payload() -> None:
    payload = json.loads(
        event_payload(
            alert_id=12,
            event=Event.DOWN,
            kind="device",
            severity="critical",
            status="open",
            title="t",
            message="m",
            at_wall=T0.timestamp(),
            device=DEVICE,
            channels=["mail"],
        )
    )
    assert payload == {
        "alert": 12,
        "event": "down",
        "kind": "device",
        "severity": "critical",
        "status": "open",
        "device": "pump-7",
        "state": "offline",
        "reason": "connection-lost",
        "class": "critical",
        "title": "t",
        "message": "m",
        "channels": ["mail"],
        "at": "2026-11-25T10:00:00.000Z",
    }

"""Repeat and escalation timing for open alerts. Pure.

R1  Only open, unacknowledged, critical alerts are followed up; not while the alert is
    flapping (its silence lasts until the device is stable), snoozed, or its device
    is silenced by a maintenance window or mute.
R2  Escalation: ``escalate_after`` seconds after the alert opened, once, if the alert
    has escalation channels. It notifies those channels.
R3  Repeat: every ``repeat_every`` seconds after the last notification of the alert
    (opened, worse, or the previous repeat), to its channels, and to its escalation
    channels once escalated.
R4  0 disables either. Acknowledging the alert stops both for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from monitor.alerts.levels import Severity


class FollowUpKind(StrEnum):
    REPEAT = "repeat"
    ESCALATE = "escalate"


@dataclass(frozen=True, slots=True)
class FollowUpView:
    """What the timing rules need of one alert row."""

    alert_id: int
    severity: Severity
    opened_at: datetime
    last_notified_at: datetime
    repeats: int
    escalated: bool
    has_escalation: bool
    acknowledged: bool = False
    flapping: bool = False
    snoozed_until: datetime | None = None
    silenced: bool = False


@dataclass(frozen=True, slots=True)
class FollowUp:
    kind: FollowUpKind
    alert_id: int
    number: int
    """For a repeat: which one (1, 2, ...); 1 for an escalation."""


def due_followups(
    view: FollowUpView, now: datetime, *, repeat_every: float, escalate_after: float
) -> list[FollowUp]:
    """What is due for ``view`` at ``now``: an escalation first, then a repeat."""
    if (
        view.acknowledged
        or view.severity is not Severity.CRITICAL
        or view.flapping
        or view.silenced
        or (view.snoozed_until is not None and now < view.snoozed_until)
    ):
        return []
    due: list[FollowUp] = []
    if (
        escalate_after > 0
        and view.has_escalation
        and not view.escalated
        and now >= view.opened_at + timedelta(seconds=escalate_after)
    ):
        due.append(FollowUp(FollowUpKind.ESCALATE, view.alert_id, 1))
    if repeat_every > 0 and now >= view.last_notified_at + timedelta(seconds=repeat_every):
        due.append(FollowUp(FollowUpKind.REPEAT, view.alert_id, view.repeats + 1))
    return due


def next_followup_at(
    view: FollowUpView, *, repeat_every: float, escalate_after: float
) -> datetime | None:
    """When the next follow-up would fall due if nothing changes (for display)."""
    if view.acknowledged or view.severity is not Severity.CRITICAL:
        return None
    candidates: list[datetime] = []
    if escalate_after > 0 and view.has_escalation and not view.escalated:
        candidates.append(view.opened_at + timedelta(seconds=escalate_after))
    if repeat_every > 0:
        candidates.append(view.last_notified_at + timedelta(seconds=repeat_every))
    if view.snoozed_until is not None:
        candidates = [max(c, view.snoozed_until) for c in candidates]
    return min(candidates, default=None)

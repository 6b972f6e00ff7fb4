"""Routing rules (monitor/alerts/routing.py) and state levels (levels.py)."""

from __future__ import annotations

import pytest

from monitor.alerts.levels import Level, Severity, classify, was_down, worst
from monitor.alerts.routing import Route, Rule, route
from monitor.liveness.states import Reason, State, Transition

CHANNELS = ["mail", "pager", "boss", "chat"]


def test_with_no_rules_every_channel_gets_critical_alerts_and_no_warnings() -> None:
    r = route([], CHANNELS, device_class="default", tags=frozenset(), severity=Severity.CRITICAL)
    assert r == Route(("boss", "chat", "mail", "pager"))
    assert (
        route([], CHANNELS, device_class="default", tags=frozenset(), severity=Severity.WARNING)
        == Route()
    )


def test_rules_match_by_class_tags_and_severity_and_union_their_channels() -> None:
    rules = [
        Rule("critical-pager", ("pager",), classes=frozenset({"critical"}), escalate_to=("boss",)),
        Rule("line-3", ("chat",), tags=frozenset({"line-3"}), min_severity=Severity.WARNING),
        Rule("everyone", ("mail",)),
        Rule("gone", ("deleted-channel",)),
    ]

    def r(cls: str, tags: set[str], sev: Severity) -> Route:
        return route(rules, CHANNELS, device_class=cls, tags=frozenset(tags), severity=sev)

    assert r("critical", set(), Severity.CRITICAL) == Route(("mail", "pager"), ("boss",))
    assert r("default", {"line-3"}, Severity.CRITICAL) == Route(("chat", "mail"))
    assert r("default", {"line-3"}, Severity.WARNING) == Route(("chat",))
    assert r("critical", set(), Severity.WARNING) == Route()
    assert r("default", {"other"}, Severity.CRITICAL) == Route(("mail",))


def tr(old: State | None, new: State, reason: Reason) -> Transition:
    return Transition("d", old, new, reason, 0.0, "s")


@pytest.mark.parametrize(
    ("new", "reason", "late", "shutdown", "expected"),
    [
        (State.ONLINE, Reason.HEARTBEAT, False, False, (Level.UP, None)),
        (State.STALE, Reason.STOPPED_BEATING, False, False, (Level.DOWN, Severity.CRITICAL)),
        (State.LOST, Reason.GONE, False, False, (Level.DOWN, Severity.CRITICAL)),
        (State.OFFLINE, Reason.CONNECTION_LOST, False, False, (Level.DOWN, Severity.CRITICAL)),
        (State.OFFLINE, Reason.SHUTDOWN, False, False, (Level.QUIET, None)),
        (State.OFFLINE, Reason.SHUTDOWN, False, True, (Level.DOWN, Severity.CRITICAL)),
        (State.LATE, Reason.MISSED_HEARTBEATS, False, False, (Level.NEUTRAL, None)),
        (State.LATE, Reason.MISSED_HEARTBEATS, True, False, (Level.DOWN, Severity.WARNING)),
        (State.MAINTENANCE, Reason.MAINTENANCE_STARTED, False, False, (Level.MAINTENANCE, None)),
    ],
)
def test_classify(
    new: State, reason: Reason, late: bool, shutdown: bool, expected: tuple[Level, Severity | None]
) -> None:
    assert classify(tr(State.ONLINE, new, reason), alert_late=late, alert_on_shutdown=shutdown) == (
        expected
    )


def test_was_down_and_worst() -> None:
    assert not was_down(None, alert_late=True)
    assert not was_down(State.ONLINE, alert_late=True)
    assert not was_down(State.LATE, alert_late=False)
    assert was_down(State.LATE, alert_late=True)
    assert all(
        was_down(s, alert_late=False)
        for s in (State.STALE, State.OFFLINE, State.LOST, State.MAINTENANCE)
    )
    assert worst(Severity.WARNING, Severity.CRITICAL) is Severity.CRITICAL
    assert worst(None, Severity.WARNING) is Severity.WARNING
    assert worst(Severity.WARNING, None) is Severity.WARNING

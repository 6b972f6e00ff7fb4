"""Which channels an alert goes to. Pure.

A rule matches a device by class and by tags (empty lists match anything; a device
matches a tag list when it carries any of the tags) and passes alerts of at least its
``min_severity``. An alert goes to the union of the ``channels`` of every matching
rule, and, once escalated, also to the union of their ``escalate_to``.

With no rules at all every channel receives critical alerts: adding one channel is
enough to be paged. Warnings (``late``, when enabled) always need a rule.

A rule of kind ``at-risk`` routes only at-risk alerts (the risk scorer's, see
``core.py`` A11), of devices whose risk level reaches its ``min_risk``; it takes no part
in routing state alerts, so adding one does not end "every channel gets critical
alerts". At-risk alerts go only where such a rule sends them, and never escalate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from monitor.alerts.levels import Severity, risk_rank

STATE: Final = "state"
AT_RISK: Final = "at-risk"
RULE_KINDS: Final = (STATE, AT_RISK)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    channels: tuple[str, ...]
    classes: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    min_severity: Severity = Severity.CRITICAL
    escalate_to: tuple[str, ...] = ()
    kind: str = STATE
    min_risk: str | None = None
    """``at-risk`` rules: the lowest risk level alerted on (``elevated`` or ``high``)."""

    def matches(self, device_class: str, tags: frozenset[str], severity: Severity) -> bool:
        if self.kind != STATE or severity.rank < self.min_severity.rank:
            return False
        return self.covers(device_class, tags)

    def covers(self, device_class: str, tags: frozenset[str]) -> bool:
        if self.classes and device_class not in self.classes:
            return False
        return not self.tags or not self.tags.isdisjoint(tags)

    def alerts_risk(self, device_class: str, tags: frozenset[str], level: str) -> bool:
        if self.kind != AT_RISK or self.min_risk is None:
            return False
        return risk_rank(level) >= risk_rank(self.min_risk) and self.covers(device_class, tags)


@dataclass(frozen=True, slots=True)
class Route:
    channels: tuple[str, ...] = ()
    escalate_to: tuple[str, ...] = ()

    def __or__(self, other: Route) -> Route:
        return Route(
            _union(self.channels, other.channels), _union(self.escalate_to, other.escalate_to)
        )


def route(
    rules: Sequence[Rule],
    channels: Iterable[str],
    *,
    device_class: str,
    tags: frozenset[str],
    severity: Severity,
) -> Route:
    """Channels (and escalation channels) for one device's alert of ``severity``.

    ``channels``: the names of the channels that exist; names in rules that no longer
    exist are dropped here (a delivery to them could only fail).
    """
    existing = list(channels)
    if not any(rule.kind == STATE for rule in rules):
        return Route(tuple(sorted(existing)) if severity is Severity.CRITICAL else ())
    known = set(existing)
    result = Route()
    for rule in rules:
        if rule.matches(device_class, tags, severity):
            result = result | Route(
                tuple(c for c in rule.channels if c in known),
                tuple(c for c in rule.escalate_to if c in known),
            )
    return result


def min_risk(rules: Sequence[Rule], *, device_class: str, tags: frozenset[str]) -> str | None:
    """The lowest risk level an ``at-risk`` rule alerts on for this device; None: none does."""
    levels = [
        rule.min_risk
        for rule in rules
        if rule.kind == AT_RISK and rule.min_risk is not None and rule.covers(device_class, tags)
    ]
    return min(levels, key=risk_rank) if levels else None


def route_at_risk(
    rules: Sequence[Rule],
    channels: Iterable[str],
    *,
    device_class: str,
    tags: frozenset[str],
    level: str,
) -> Route:
    """Channels for a device's at-risk alert of ``level``: only ``at-risk`` rules route it."""
    known = set(channels)
    found: set[str] = set()
    for rule in rules:
        if rule.alerts_risk(device_class, tags, level):
            found.update(c for c in rule.channels if c in known)
    return Route(tuple(sorted(found)))


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(a) | set(b)))

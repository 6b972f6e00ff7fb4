"""Which channels an alert goes to. Pure.

A rule matches a device by class and by tags (empty lists match anything; a device
matches a tag list when it carries any of the tags) and passes alerts of at least its
``min_severity``. An alert goes to the union of the ``channels`` of every matching
rule, and, once escalated, also to the union of their ``escalate_to``.

With no rules at all every channel receives critical alerts: adding one channel is
enough to be paged. Warnings (``late``, when enabled) always need a rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.alerts.levels import Severity


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    channels: tuple[str, ...]
    classes: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    min_severity: Severity = Severity.CRITICAL
    escalate_to: tuple[str, ...] = ()

    def matches(self, device_class: str, tags: frozenset[str], severity: Severity) -> bool:
        if severity.rank < self.min_severity.rank:
            return False
        if self.classes and device_class not in self.classes:
            return False
        return not self.tags or not self.tags.isdisjoint(tags)


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
    if not rules:
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


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(a) | set(b)))

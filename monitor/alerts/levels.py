"""What a device state means for alerting: up, down (with a severity), or neither.

Pure data and two small functions; :mod:`monitor.alerts.core` builds on them.

=================  ===========================================  ==================
state (new side)   alerting level                               severity
=================  ===========================================  ==================
online             UP (a recovery if an alert is open)          -
stale, lost        DOWN                                         critical
offline            DOWN for connection-lost; for an announced   critical
                   shutdown QUIET (no alert) unless
                   ``alert_on_shutdown``
late               DOWN if ``alert_late``, else NEUTRAL         warning
unknown            NEUTRAL                                      -
maintenance        MAINTENANCE (ops put it aside)               -
=================  ===========================================  ==================

On the *old* side of a transition only one question matters: was the device already
down? ``stale``, ``offline``, ``lost`` and ``maintenance`` count as down (``late`` too
when ``alert_late``): a change from one of them into another down state never opens a
new alert. That single rule is what keeps a device that was down during maintenance,
or before the monitor restarted, from alerting again later.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Final

from monitor.liveness.states import Reason, State, Transition


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK: Final = {Severity.WARNING: 1, Severity.CRITICAL: 2}


def worst(a: Severity | None, b: Severity | None) -> Severity | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.rank >= b.rank else b


class Level(Enum):
    UP = "up"
    DOWN = "down"
    QUIET = "quiet"
    """Down, but not worth an alert (an announced shutdown by default)."""
    NEUTRAL = "neutral"
    MAINTENANCE = "maintenance"


_ALWAYS_DOWN: Final = frozenset({State.STALE, State.OFFLINE, State.LOST, State.MAINTENANCE})


def classify(
    tr: Transition, *, alert_late: bool, alert_on_shutdown: bool
) -> tuple[Level, Severity | None]:
    """The alerting level of the state ``tr`` moves into, with its severity when DOWN."""
    new = tr.new
    if new is State.ONLINE:
        return Level.UP, None
    if new is State.STALE or new is State.LOST:
        return Level.DOWN, Severity.CRITICAL
    if new is State.OFFLINE:
        if tr.reason is Reason.SHUTDOWN and not alert_on_shutdown:
            return Level.QUIET, None
        return Level.DOWN, Severity.CRITICAL
    if new is State.LATE:
        return (Level.DOWN, Severity.WARNING) if alert_late else (Level.NEUTRAL, None)
    if new is State.MAINTENANCE:
        return Level.MAINTENANCE, None
    return Level.NEUTRAL, None


def was_down(old: State | None, *, alert_late: bool) -> bool:
    """Whether the device was already down (or put aside) before the transition."""
    if old is None:
        return False
    if old in _ALWAYS_DOWN:
        return True
    return old is State.LATE and alert_late


# The risk levels of ``monitor.risk.scoring.RiskLevel``, by name (alerting does not import
# the scorer and its numpy); an ``at-risk`` rule names the lowest one it alerts on.
RISK_LEVELS: Final = ("low", "elevated", "high")
ALERTING_RISK_LEVELS: Final = ("elevated", "high")


def risk_rank(level: str) -> int:
    """0 for ``low`` (and anything unknown), 1 ``elevated``, 2 ``high``."""
    try:
        return RISK_LEVELS.index(level)
    except ValueError:
        return 0

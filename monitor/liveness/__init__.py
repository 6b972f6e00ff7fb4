"""The pure liveness engine: device states, transitions and one deadline scheduler.

No asyncio, no database, no MQTT and no clock reads in this package; the shell
passes time in and carries out the transitions that come back. The rules are stated
at the top of :mod:`monitor.liveness.engine`.
"""

from monitor.liveness.engine import LivenessEngine
from monitor.liveness.errors import IllegalTransition, InvalidPolicy, LivenessError, UnknownDevice
from monitor.liveness.outcomes import EventResult, Outcome
from monitor.liveness.policy import (
    DEFAULT_CLASS,
    DEFAULT_GRACE,
    DEFAULT_INTERVAL,
    DEFAULT_LOST_AFTER,
    DEFAULT_MISSED_LIMIT,
    DEFAULT_WILL_HOLD,
    Policy,
    resolve_interval,
)
from monitor.liveness.scheduler import DeadlineScheduler
from monitor.liveness.snapshot import DeviceSnapshot
from monitor.liveness.states import ALLOWED_TRANSITIONS, Reason, State, Transition

__all__ = [
    "ALLOWED_TRANSITIONS",
    "DEFAULT_CLASS",
    "DEFAULT_GRACE",
    "DEFAULT_INTERVAL",
    "DEFAULT_LOST_AFTER",
    "DEFAULT_MISSED_LIMIT",
    "DEFAULT_WILL_HOLD",
    "DeadlineScheduler",
    "DeviceSnapshot",
    "EventResult",
    "IllegalTransition",
    "InvalidPolicy",
    "LivenessEngine",
    "LivenessError",
    "Outcome",
    "Policy",
    "Reason",
    "State",
    "Transition",
    "UnknownDevice",
    "resolve_interval",
]

"""Per-class timing policy and the rule that picks a device's heartbeat interval.

Defaults (each can be set per device class; the class named ``default`` applies to
every device whose class is not configured):

* interval: ``None`` -- use what the device announces; ``DEFAULT_INTERVAL`` (30 s)
  if it never announced one.
* grace: ``DEFAULT_GRACE`` (10 s) -- slack for network and broker delay.
* missed_limit: ``DEFAULT_MISSED_LIMIT`` (3) -- intervals without a heartbeat before stale.
* lost_after: ``DEFAULT_LOST_AFTER`` (86 400 s) -- stale or offline this long means lost.
* will_hold (engine-wide): ``DEFAULT_WILL_HOLD`` (2 s) -- how long a will waits for the
  device's next session before it counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from device_client.protocol import MAX_INTERVAL, MIN_INTERVAL
from monitor.liveness.errors import InvalidPolicy

DEFAULT_CLASS: Final = "default"
DEFAULT_INTERVAL: Final = 30.0
DEFAULT_GRACE: Final = 10.0
DEFAULT_MISSED_LIMIT: Final = 3
DEFAULT_LOST_AFTER: Final = 86_400.0
DEFAULT_WILL_HOLD: Final = 2.0


def check_interval(value: float, *, field: str = "interval") -> float:
    """Return ``value`` as float if it is a protocol-valid interval, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPolicy("must be a number of seconds", field=field)
    seconds = float(value)
    if not math.isfinite(seconds) or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise InvalidPolicy(f"must be between {MIN_INTERVAL} and {MAX_INTERVAL:g} s", field=field)
    return seconds


def _check_duration(value: float, *, field: str, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPolicy("must be a number of seconds", field=field)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        least = "zero or more" if allow_zero else "more than zero"
        raise InvalidPolicy(f"must be a finite number of seconds, {least}", field=field)
    return seconds


@dataclass(frozen=True, slots=True)
class Policy:
    """Timing for one device class. Instances are shared by every device of the class."""

    interval: float | None = None
    grace: float = DEFAULT_GRACE
    missed_limit: int = DEFAULT_MISSED_LIMIT
    lost_after: float = DEFAULT_LOST_AFTER

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__ so ints become floats once here
        # instead of on every deadline computation.
        if self.interval is not None:
            object.__setattr__(self, "interval", check_interval(self.interval))
        object.__setattr__(
            self, "grace", _check_duration(self.grace, field="grace", allow_zero=True)
        )
        limit = self.missed_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidPolicy("must be an integer >= 1", field="missed_limit")
        object.__setattr__(
            self,
            "lost_after",
            _check_duration(self.lost_after, field="lost_after", allow_zero=False),
        )

    def late_after(self, interval: float) -> float:
        """Seconds of silence after which a device is late."""
        return interval + self.grace

    def stale_after(self, interval: float) -> float:
        """Seconds of silence after which a device is stale."""
        return interval * self.missed_limit + self.grace


def resolve_interval(
    *,
    override: float | None,
    policy: Policy,
    announced: float | None,
    default: float = DEFAULT_INTERVAL,
) -> float:
    """The interval a device is judged by.

    Ops override first (it is a deliberate decision about this one device), then the
    class's interval (ops policy for a kind of device), then what the device announces,
    then the global default.
    """
    if override is not None:
        return override
    if policy.interval is not None:
        return policy.interval
    if announced is not None:
        return announced
    return default

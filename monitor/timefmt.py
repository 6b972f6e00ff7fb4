"""Times as the monitor shows them: UTC timestamps in ISO 8601 with milliseconds and a
'Z'; durations in short human form."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

# "YYYY-MM-DDTHH:MM:SS" of recent whole seconds: a status payload has two times, and a
# mass outage makes thousands of payloads whose times share a few seconds.
_SECONDS: dict[int, str] = {}
_SECONDS_KEPT: Final = 256


def iso(wall: float | None) -> str | None:
    """``wall`` as ISO 8601 UTC with milliseconds (truncated) and a 'Z'.

    The same string as ``datetime.fromtimestamp(wall, UTC).isoformat(timespec=
    "milliseconds")`` with "Z" for "+00:00", split the way CPython splits it (the
    fraction rounded half-even to microseconds, carried into the second), with the
    date and time of day formatted once per second.
    """
    if wall is None:
        return None
    fraction, whole = math.modf(wall)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    second = int(whole)
    prefix = _SECONDS.get(second)
    if prefix is None:
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        prefix = _SECONDS[second] = datetime.fromtimestamp(second, UTC).isoformat()[:19]
    return f"{prefix}.{micros // 1000:03d}Z"


def to_datetime(wall: float | None) -> datetime | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC)


def from_datetime(value: datetime | None) -> float | None:
    if value is None:
        return None
    # SQLite hands back naive datetimes; everything the monitor stores is UTC.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def format_duration(seconds: float) -> str:
    """A short human duration: ``45s``, ``12m``, ``3h20m``, ``2d4h``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60}s" if s % 60 and s < 600 else "")
    if s < 86_400:
        return f"{s // 3600}h" + (f"{(s % 3600) // 60}m" if (s % 3600) // 60 else "")
    return f"{s // 86_400}d" + (f"{(s % 86_400) // 3600}h" if (s % 86_400) // 3600 else "")

"""Times as the monitor shows them: UTC timestamps in ISO 8601 with milliseconds and a
'Z'; durations in short human form."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    # isoformat is several times cheaper than strftime (a status payload has two of
    # these); milliseconds are truncated either way. "+00:00" becomes "Z".
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


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

"""UTC timestamps as the monitor shows them: ISO 8601 with milliseconds and a 'Z'."""

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

"""Maintenance windows and mutes: who they cover and when they are active. Pure.

A *scope* names devices, device classes and tags; a device is covered when its id, its
class or one of its tags is named. An empty scope covers the whole fleet.

A *maintenance window* is either

* one-off: ``starts_at`` .. ``ends_at`` (UTC), or
* recurring: a weekly schedule — days of the week, a local start time, a duration and
  an IANA time zone (``mon-fri 02:00`` for 2 h in ``Europe/Berlin``; ``daily 23:30`` for
  3 h crosses midnight) — optionally bounded by ``starts_at``/``ends_at``.

A *mute* (snooze) covers its scope until an expiry time.

While a device is covered, a change that would open an alert for it opens none, and
its open alerts are not repeated or escalated. Recoveries of alerts that were sent
still go out, so nobody is left believing a device is down. A device still down when
its silence ends is alerted then (the core's rule A9).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.alerts.errors import InvalidSchedule

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RECURRING_DURATION: Final = timedelta(days=7)

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` -> a positive timedelta."""
    compact = text.strip().lower().replace(" ", "")
    pos = 0
    seconds = 0.0
    while pos < len(compact):
        match = _DURATION.match(compact, pos)
        if match is None or match.end() == pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not compact or pos != len(compact):
        raise InvalidSchedule(f"{text!r} is not a duration (e.g. 90s, 15m, 2h, 1d)", field=field)
    if seconds <= 0:
        raise InvalidSchedule("must be longer than zero", field=field)
    return timedelta(seconds=seconds)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"unknown time zone {name!r}", field="tz") from exc


@dataclass(frozen=True, slots=True)
class Scope:
    devices: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        devices: Iterable[str] = (),
        classes: Iterable[str] = (),
        tags: Iterable[str] = (),
    ) -> Scope:
        return cls(frozenset(devices), frozenset(classes), frozenset(tags))

    @property
    def everything(self) -> bool:
        return not (self.devices or self.classes or self.tags)

    def covers(self, device_id: str, device_class: str, tags: frozenset[str]) -> bool:
        if self.everything:
            return True
        return (
            device_id in self.devices
            or device_class in self.classes
            or not self.tags.isdisjoint(tags)
        )

    def describe(self) -> str:
        if self.everything:
            return "all devices"
        parts = [f"device {d}" for d in sorted(self.devices)]
        parts += [f"class {c}" for c in sorted(self.classes)]
        parts += [f"tag {t}" for t in sorted(self.tags)]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Weekly:
    """Every listed weekday at a local time, for a duration, in a time zone."""

    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: time
    duration: timedelta
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise InvalidSchedule("name at least one day of the week", field="every")
        if not timedelta(0) < self.duration <= MAX_RECURRING_DURATION:
            raise InvalidSchedule(
                "a recurring window lasts more than 0 and at most 7 days", field="duration"
            )
        zone(self.tz)

    def occurrence_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence (start, end in UTC) covering ``at``, if any."""
        tz = zone(self.tz)
        local_day = at.astimezone(tz).date()
        # An occurrence lasts at most 7 days, so it began today or within the last 7.
        for back in range(8):
            day = local_day - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            # Compare in UTC: aware-datetime arithmetic in one zone is wall-clock
            # arithmetic, which would stretch or shrink a window across a DST change.
            begins = datetime.combine(day, self.start, tzinfo=tz).astimezone(UTC)
            ends = begins + self.duration
            if begins <= at < ends:
                return begins, ends
        return None

    def next_start(self, after: datetime) -> datetime:
        tz = zone(self.tz)
        local_day = after.astimezone(tz).date()
        for ahead in range(8):
            day = local_day + timedelta(days=ahead)
            if day.weekday() in self.days:
                begins = datetime.combine(day, self.start, tzinfo=tz).astimezone(UTC)
                if begins > after:
                    return begins
        raise AssertionError("unreachable: some listed weekday comes within 8 days")

    def spec(self) -> str:
        """The canonical text form, as stored: ``mon,tue,fri 02:00``."""
        days = "daily" if len(self.days) == 7 else ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}"


def parse_every(text: str, *, duration: timedelta, tz: str = "UTC") -> Weekly:
    """``"mon,wed-fri 02:00"``, ``"daily 23:30"``, ``"sat 00:00"`` -> :class:`Weekly`."""
    parts = text.strip().lower().split()
    if len(parts) != 2:
        raise InvalidSchedule(
            f"{text!r}: write DAYS HH:MM, e.g. 'mon-fri 02:00' or 'daily 23:30'", field="every"
        )
    days_text, start_text = parts
    days: set[int] = set()
    for item in days_text.split(","):
        if item in ("daily", "*", "all"):
            days.update(range(7))
        elif "-" in item:
            first, _, last = item.partition("-")
            a, b = _day(first), _day(last)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
        else:
            days.add(_day(item))
    try:
        start = time.fromisoformat(start_text)
    except ValueError as exc:
        raise InvalidSchedule(
            f"{start_text!r} is not a time of day (HH:MM)", field="every"
        ) from exc
    return Weekly(frozenset(days), start.replace(tzinfo=None), duration, tz)


def _day(name: str) -> int:
    key = name[:3]
    if key not in DAYS:
        raise InvalidSchedule(f"{name!r} is not a day of the week (mon .. sun)", field="every")
    return DAYS.index(key)


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window as the alerting core sees it."""

    id: int
    scope: Scope
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    weekly: Weekly | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.weekly is None and (self.starts_at is None or self.ends_at is None):
            raise InvalidSchedule("a one-off window needs a start and an end", field="window")
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.ends_at <= self.starts_at
        ):
            raise InvalidSchedule("ends before it starts", field="window")

    def active(self, at: datetime) -> bool:
        if self.starts_at is not None and at < self.starts_at:
            return False
        if self.ends_at is not None and at >= self.ends_at:
            return False
        return self.weekly is None or self.weekly.occurrence_at(at) is not None

    def finished(self, at: datetime) -> bool:
        """True when the window can never be active again."""
        return self.ends_at is not None and at >= self.ends_at


@dataclass(frozen=True, slots=True)
class QuietMute:
    id: int
    scope: Scope
    until: datetime
    note: str = ""

    def active(self, at: datetime) -> bool:
        return at < self.until


@dataclass(frozen=True, slots=True)
class Quiet:
    """Every window and mute the monitor knows; answers "is this device silenced now?"."""

    windows: tuple[Window, ...] = ()
    mutes: tuple[QuietMute, ...] = ()

    def in_effect(self, at: datetime) -> dict[str, str]:
        """What is active at ``at``: ``"maintenance #3"`` -> what it covers (for logs)."""
        active = {f"maintenance #{w.id}": w.scope.describe() for w in self.windows if w.active(at)}
        active.update({f"mute #{m.id}": m.scope.describe() for m in self.mutes if m.active(at)})
        return active

    def labels_in_effect(self, at: datetime) -> set[str]:
        """The labels :meth:`silenced_by` may return at ``at``."""
        labels = {f"maintenance #{w.id}" for w in self.windows if w.active(at)}
        labels.update(f"mute #{m.id}" for m in self.mutes if m.active(at))
        return labels

    def silenced_by(
        self, device_id: str, device_class: str, tags: frozenset[str], at: datetime
    ) -> str | None:
        """What silences the device at ``at`` (``"maintenance #3"``, ``"mute #7"``), or None."""
        for window in self.windows:
            if window.active(at) and window.scope.covers(device_id, device_class, tags):
                return f"maintenance #{window.id}"
        for mute in self.mutes:
            if mute.active(at) and mute.scope.covers(device_id, device_class, tags):
                return f"mute #{mute.id}"
        return None

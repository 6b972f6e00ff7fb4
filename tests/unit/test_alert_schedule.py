"""Maintenance windows, mutes, scopes and durations (monitor/alerts/schedule.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from monitor.alerts.errors import InvalidSchedule
from monitor.alerts.schedule import (
    Quiet,
    QuietMute,
    Scope,
    Weekly,
    Window,
    parse_duration,
    parse_every,
)
from monitor.timefmt import format_duration


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("0.5s", 0.5),
        (" 2 h ", 7200),
        ("1w", 604800),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "2x", "-5m", "0", "1h-", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidSchedule):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5, 65, 3600, 5400, 90000)] == [
        "5s",
        "1m5s",
        "1h",
        "1h30m",
        "1d1h",
    ]


def test_scope_matches_devices_classes_or_tags_and_empty_means_everything() -> None:
    scope = Scope.of(devices=["pump-7"], classes=["critical"], tags=["line-3"])
    assert scope.covers("pump-7", "default", frozenset())
    assert scope.covers("x", "critical", frozenset())
    assert scope.covers("x", "default", frozenset({"line-3", "eu"}))
    assert not scope.covers("x", "default", frozenset({"eu"}))
    assert Scope().covers("anything", "default", frozenset())
    assert Scope().describe() == "all devices"
    assert scope.describe() == "device pump-7, class critical, tag line-3"


def test_one_off_window_is_active_between_start_and_end() -> None:
    w = Window(1, Scope(), utc("2026-11-25T10:00"), utc("2026-11-25T12:00"))
    assert not w.active(utc("2026-11-25T09:59:59"))
    assert w.active(utc("2026-11-25T10:00"))
    assert w.active(utc("2026-11-25T11:59:59"))
    assert not w.active(utc("2026-11-25T12:00"))
    assert w.finished(utc("2026-11-25T12:00"))
    with pytest.raises(InvalidSchedule):
        Window(2, Scope(), utc("2026-11-25T10:00"), None)
    with pytest.raises(InvalidSchedule):
        Window(3, Scope(), utc("2026-11-25T10:00"), utc("2026-11-25T09:00"))


def test_weekly_window_on_weekdays_in_a_time_zone() -> None:
    # 2026-11-25 is a Wednesday. 02:00-04:00 Berlin (UTC+1 in November) = 01:00-03:00 UTC.
    weekly = parse_every("mon-fri 02:00", duration=timedelta(hours=2), tz="Europe/Berlin")
    assert weekly.days == frozenset(range(5))
    assert weekly.spec() == "mon,tue,wed,thu,fri 02:00"
    w = Window(1, Scope(), weekly=weekly)
    assert not w.active(utc("2026-11-25T00:59"))
    assert w.active(utc("2026-11-25T01:00"))
    assert w.active(utc("2026-11-25T02:59"))
    assert not w.active(utc("2026-11-25T03:00"))
    # Saturday 2026-11-28: not listed.
    assert not w.active(utc("2026-11-28T01:30"))
    assert weekly.next_start(utc("2026-11-27T05:00")) == utc("2026-11-30T01:00")


def test_a_recurring_window_crossing_midnight_covers_the_next_morning() -> None:
    weekly = parse_every("fri 23:00", duration=timedelta(hours=3))
    w = Window(1, Scope(), weekly=weekly)
    assert w.active(utc("2026-11-27T23:30"))  # Friday night
    assert w.active(utc("2026-11-28T01:59"))  # Saturday morning, same occurrence
    assert not w.active(utc("2026-11-28T02:00"))
    assert not w.active(utc("2026-11-28T23:30"))


def test_a_weekly_window_keeps_its_real_length_across_a_dst_change() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25 at 03:00 local.
    weekly = Weekly(frozenset({6}), time(1, 0), timedelta(hours=4), "Europe/Berlin")
    begins, ends = weekly.occurrence_at(utc("2026-10-25T00:30")) or (None, None)
    assert begins == utc("2026-10-24T23:00")
    assert ends == utc("2026-10-25T03:00")


def test_daily_and_lists_and_bounds() -> None:
    assert parse_every("daily 00:00", duration=timedelta(minutes=5)).days == frozenset(range(7))
    assert parse_every("sat,sun 10:00", duration=timedelta(hours=1)).days == frozenset({5, 6})
    assert parse_every("fri-mon 10:00", duration=timedelta(hours=1)).days == frozenset({4, 5, 6, 0})
    bounded = Window(
        1,
        Scope(),
        starts_at=utc("2026-12-01T00:00"),
        ends_at=None,
        weekly=parse_every("daily 10:00", duration=timedelta(hours=1)),
    )
    assert not bounded.active(utc("2026-11-30T10:30"))
    assert bounded.active(utc("2026-12-01T10:30"))


@pytest.mark.parametrize(
    ("every", "duration", "tz"),
    [
        ("someday 02:00", timedelta(hours=1), "UTC"),
        ("mon 25:00", timedelta(hours=1), "UTC"),
        ("mon", timedelta(hours=1), "UTC"),
        ("mon 02:00", timedelta(days=8), "UTC"),
        ("mon 02:00", timedelta(hours=1), "Mars/Olympus"),
    ],
)
def test_bad_recurrences(every: str, duration: timedelta, tz: str) -> None:
    with pytest.raises(InvalidSchedule):
        parse_every(every, duration=duration, tz=tz)


def test_quiet_names_what_silences_a_device() -> None:
    quiet = Quiet(
        windows=(
            Window(3, Scope.of(tags=["line-3"]), utc("2026-11-25T10:00"), utc("2026-11-25T12:00")),
        ),
        mutes=(QuietMute(7, Scope.of(devices=["pump-7"]), utc("2026-11-25T11:00")),),
    )
    at = utc("2026-11-25T10:30")
    assert quiet.silenced_by("x", "default", frozenset({"line-3"}), at) == "maintenance #3"
    assert quiet.silenced_by("pump-7", "default", frozenset(), at) == "mute #7"
    assert quiet.silenced_by("pump-7", "default", frozenset(), utc("2026-11-25T11:00")) is None
    assert quiet.silenced_by("y", "default", frozenset(), at) is None

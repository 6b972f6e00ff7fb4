"""Uptime from state changes: online/late up; stale/offline/lost down; the rest not counted."""

from __future__ import annotations

import pytest

from monitor.web.uptime import uptime

START, END = 1_000.0, 2_000.0


def test_a_device_online_all_window_is_100_percent() -> None:
    result = uptime("online", [], start=START, end=END)
    assert (result.up_seconds, result.down_seconds, result.percent) == (1_000.0, 0.0, 100.0)


def test_late_counts_as_up_and_stale_offline_lost_as_down() -> None:
    changes = [(1_100.0, "late"), (1_200.0, "stale"), (1_400.0, "offline"), (1_500.0, "lost")]
    result = uptime("online", changes, start=START, end=END)
    assert result.up_seconds == pytest.approx(200.0)  # 100 online + 100 late
    assert result.down_seconds == pytest.approx(800.0)
    assert result.percent == pytest.approx(20.0)


def test_maintenance_and_unknown_are_not_counted() -> None:
    changes = [(1_250.0, "maintenance"), (1_500.0, "unknown"), (1_750.0, "stale")]
    result = uptime("online", changes, start=START, end=END)
    assert result.up_seconds == pytest.approx(250.0)
    assert result.down_seconds == pytest.approx(250.0)
    assert result.percent == pytest.approx(50.0)


def test_time_before_the_first_transition_is_not_counted() -> None:
    result = uptime(None, [(1_900.0, "online")], start=START, end=END)
    assert result.up_seconds == pytest.approx(100.0)
    assert result.percent == pytest.approx(100.0)


def test_changes_before_the_window_set_its_starting_state() -> None:
    changes = [(500.0, "online"), (900.0, "stale"), (1_500.0, "online")]
    result = uptime(None, changes, start=START, end=END)
    assert result.down_seconds == pytest.approx(500.0)
    assert result.up_seconds == pytest.approx(500.0)


def test_changes_after_the_window_are_ignored() -> None:
    result = uptime("online", [(2_500.0, "stale")], start=START, end=END)
    assert result.percent == pytest.approx(100.0)


def test_nothing_counted_gives_no_percentage() -> None:
    assert uptime(None, [], start=START, end=END).percent is None
    assert uptime("maintenance", [], start=START, end=END).percent is None

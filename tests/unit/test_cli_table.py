"""The CLI's tables and relative times: aligned, never wrapped, cells printed as written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.cli_table import ago, render_table, when


def test_columns_align_two_spaces_apart_without_trailing_blanks() -> None:
    text = render_table(
        ("DEVICE", "STATE", "REASON"), [("pump-1", "online", ""), ("p-2", "stale", "x")]
    )
    assert text.splitlines() == [
        "DEVICE  STATE   REASON",
        "pump-1  online",
        "p-2     stale   x",
    ]


def test_a_long_row_is_never_wrapped_or_cut() -> None:
    long_id = "d" * 500
    lines = render_table(("DEVICE", "STATE"), [(long_id, "lost")]).splitlines()
    assert len(lines) == 2
    assert lines[1].split() == [long_id, "lost"]


def test_cells_that_look_like_markup_print_as_written() -> None:
    text = render_table(("NOTE",), [("[bold]swap[/bold] :smile:",)])
    assert text.splitlines()[1] == "[bold]swap[/bold] :smile:"


def test_relative_and_absolute_times() -> None:
    now = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    assert ago(None, now) == "-"
    assert ago(now - timedelta(seconds=45), now) == "45s ago"
    assert ago((now - timedelta(hours=3, minutes=20)).replace(tzinfo=None), now) == "3h20m ago"
    assert when(now) == "2026-12-03 15:00:00Z"
    assert when(None) == "-"

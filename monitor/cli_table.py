"""Tables and relative times as every ``clawbeat`` command prints them.

Tables are laid out by rich, without borders, so they stay easy to read and to cut
with ``awk``: one line per row, columns two spaces apart, no wrapping however long a
cell (a pipe has no width), no trailing blanks. Cells are plain text: a device id or a
description that looks like rich markup or an emoji code prints as written.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from rich.console import Console
from rich.table import Table

from monitor.timefmt import format_duration

# Wide enough that no table is ever wrapped or cut; lines are stripped afterwards.
_UNLIMITED: Final = 1_000_000


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``header`` and ``rows`` as aligned text lines (no final newline)."""
    table = Table(*header, box=None, show_edge=False, pad_edge=False, header_style="")
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    console = Console(
        file=out,
        width=_UNLIMITED,
        color_system=None,
        markup=False,
        emoji=False,
        highlight=False,
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print(render_table(header, rows))


def ago(value: datetime | None, now: datetime) -> str:
    """``45s ago``, ``3h20m ago``; ``-`` for never. Naive datetimes (SQLite) are UTC."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return f"{format_duration((now - value).total_seconds())} ago"


def when(value: datetime | None) -> str:
    """An absolute UTC time, to the second: ``2026-12-03 15:20:48Z``; ``-`` for never."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")

"""CPU seconds of a process tree, read from ``/proc``.

A benchmark charges a receiver with the CPU of every process it consists of: the monitor
and what it forks, Node-RED's node process, a PostgreSQL cluster's postmaster and all its
backends. Backends come and go (autovacuum workers, a pool reconnecting); once one has
exited and been reaped, the kernel adds its CPU to the parent's ``cutime``/``cstime``, so
the root's figures include them and nothing is lost between two samples.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
PROC: Final = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The CPU fields of one ``/proc/<pid>/stat`` line, in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int  # reaped children, waited for
    cstime: int

    @property
    def own_ticks(self) -> int:
        return self.utime + self.stime

    @property
    def reaped_ticks(self) -> int:
        return self.cutime + self.cstime


def parse_stat(line: str) -> ProcStat:
    """Parse a ``/proc/<pid>/stat`` line.

    The command name (field 2) sits in parentheses and may itself hold spaces and
    parentheses, so the fixed fields are counted from the last ``)``.
    """
    head, sep, tail = line.rpartition(")")
    pid_text, _, _comm = head.partition(" (")
    fields = tail.split()
    if not sep or len(fields) < 15:
        raise ValueError(f"not a /proc/<pid>/stat line: {line[:80]!r}")
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    return ProcStat(
        pid=int(pid_text),
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
    )


def tree_ticks(root: int, stats: Iterable[ProcStat], *, exclude: Collection[int] = ()) -> int:
    """Clock ticks of ``root`` and its descendants, their reaped children included.

    ``exclude`` names processes (and with them their descendants) charged to nobody:
    the benchmark's own connection to a database it measures, say.
    """
    children: dict[int, list[ProcStat]] = {}
    by_pid: dict[int, ProcStat] = {}
    for stat in stats:
        by_pid[stat.pid] = stat
        children.setdefault(stat.ppid, []).append(stat)
    if root not in by_pid or root in exclude:
        return 0
    total = 0
    todo = [by_pid[root]]
    while todo:
        stat = todo.pop()
        total += stat.own_ticks + stat.reaped_ticks
        todo.extend(c for c in children.get(stat.pid, ()) if c.pid not in exclude)
    return total


def all_stats(proc: Path = PROC) -> list[ProcStat]:
    """Every process's stat line that can still be read (processes exit meanwhile)."""
    stats: list[ProcStat] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            stats.append(parse_stat((entry / "stat").read_text()))
    return stats


def tree_cpu_seconds(root: int, *, exclude: Collection[int] = ()) -> float:
    """CPU seconds (user + system) of ``root``'s process tree so far; 0 once it is gone."""
    return tree_ticks(root, all_stats(), exclude=exclude) / CLOCK_TICKS

"""The benchmark's CPU accounting: ``/proc/<pid>/stat`` lines and process trees, and the
Node-RED leg's version checks. Pure functions on text; nothing is run or installed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.nodered_rig import NodeRedUnavailable, check_tools, node_major, pinned_version
from bench.proc_cpu import ProcStat, all_stats, parse_stat, tree_ticks


def _line(pid: int, comm: str, ppid: int, utime: int, stime: int, cut: int, cst: int) -> str:
    # Fields 3..13 (state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
    # majflt, cmajflt), then utime stime cutime cstime and the rest of a real line.
    return (
        f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 1200 0 3 0 "
        f"{utime} {stime} {cut} {cst} 20 0 1 0 5000 12345678 900 18446744073709551615"
    )


def test_cpu_fields_are_read_after_the_command_name() -> None:
    stat = parse_stat(_line(4242, "postgres", 1, 150, 30, 7, 2))
    assert stat == ProcStat(pid=4242, ppid=1, utime=150, stime=30, cutime=7, cstime=2)
    assert (stat.own_ticks, stat.reaped_ticks) == (180, 9)


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    stat = parse_stat(_line(77, "node-red (main) x", 5, 11, 12, 13, 14))
    assert (stat.pid, stat.ppid, stat.utime, stat.stime) == (77, 5, 11, 12)
    assert (stat.cutime, stat.cstime) == (13, 14)


@pytest.mark.parametrize("line", ["", "12 (x) S 1 2", "not a stat line at all"])
def test_a_truncated_or_foreign_line_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="stat"):
        parse_stat(line)


def _tree() -> list[ProcStat]:
    return [
        ProcStat(pid=1, ppid=0, utime=999, stime=999, cutime=0, cstime=0),  # init
        ProcStat(pid=10, ppid=1, utime=100, stime=20, cutime=30, cstime=5),  # postmaster
        ProcStat(pid=11, ppid=10, utime=40, stime=10, cutime=0, cstime=0),  # backend
        ProcStat(pid=12, ppid=10, utime=7, stime=3, cutime=0, cstime=0),  # the poller
        ProcStat(pid=13, ppid=11, utime=1, stime=1, cutime=0, cstime=0),  # grandchild
        ProcStat(pid=20, ppid=1, utime=500, stime=0, cutime=0, cstime=0),  # unrelated
    ]


def test_a_tree_counts_its_root_descendants_and_reaped_children() -> None:
    assert tree_ticks(10, _tree()) == 155 + 50 + 10 + 2


def test_an_excluded_process_and_what_it_forked_are_charged_to_nobody() -> None:
    assert tree_ticks(10, _tree(), exclude={12}) == 155 + 50 + 2
    assert tree_ticks(10, _tree(), exclude={11}) == 155 + 10


def test_a_root_that_is_gone_counts_nothing() -> None:
    assert tree_ticks(99, _tree()) == 0


def test_this_process_is_among_the_live_stats() -> None:
    mine = [s for s in all_stats() if s.pid == os.getpid()]
    assert len(mine) == 1
    assert mine[0].ppid == os.getppid()


def test_all_stats_skips_entries_that_are_not_processes(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(_line(42, "sh", 1, 1, 2, 3, 4))
    (tmp_path / "43").mkdir()  # exited between listing and reading: no stat file
    assert [s.pid for s in all_stats(tmp_path)] == [42]


@pytest.mark.parametrize(
    ("output", "major"), [("v20.20.2\n", 20), ("v18.0.0", 18), ("", None), ("node", None)]
)
def test_node_major_version(output: str, major: int | None) -> None:
    assert node_major(output) == major


def test_node_red_is_pinned_to_an_exact_4_x_release() -> None:
    assert pinned_version().split(".")[0] == "4"
    assert all(part.isdigit() for part in pinned_version().split("."))


def test_missing_node_and_npm_are_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(NodeRedUnavailable) as caught:
        check_tools()
    assert str(caught.value) == "node and npm not found on PATH (Node-RED 4 needs Node.js 18+)"

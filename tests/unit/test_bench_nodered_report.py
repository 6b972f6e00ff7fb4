"""The Node-RED comparison's report: ranges over runs, the target verdict, and a run of one
device count keeping the other's figures. Pure data in and out; nothing is measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.bench_nodered import keep_earlier_sizes, render, summarize

MACHINE = {"nproc": 2, "cpu": "test CPU", "mosquitto": "mosquitto 2", "python": "3.11"}


def _run(run: int, nodered: float, monitor: float, postgresql: float) -> dict[str, Any]:
    total = monitor + postgresql
    return {
        "run": run,
        "load_average": [2.0 + run, 3.0],
        "nodered": {"cpu_s": 1.0, "drain_s": 2.0, "us_per_heartbeat": nodered},
        "clawbeat": {
            "cpu_s": 1.0,
            "drain_s": 3.0,
            "monitor": {"cpu_s": 1.0, "us_per_heartbeat": monitor},
            "postgresql": {"cpu_s": 0.1, "us_per_heartbeat": postgresql},
            "us_per_heartbeat": total,
        },
        "ratio": round(nodered / total, 2),
    }


def _size(devices: int, date: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    size = {"devices": devices, "heartbeats": 200_000, "date": date, "runs": runs}
    size["summary"] = summarize(size)
    return size


def _report(date: str, *sizes: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": date,
        "heartbeats": 200_000,
        "node_red": "4.1.8",
        "node": "v20",
        "sizes": list(sizes),
    }


def test_ranges_span_the_runs() -> None:
    size = _size(10_000, "d1", [_run(1, 40.0, 20.0, 4.0), _run(2, 36.0, 22.0, 2.0)])
    assert size["summary"]["nodered_us"] == [36.0, 40.0]
    assert size["summary"]["monitor_us"] == [20.0, 22.0]
    assert size["summary"]["ratio"] == [1.5, 1.67]
    assert size["summary"]["load_average"] == [3.0, 4.0]


def test_the_target_is_met_only_when_every_run_reaches_it() -> None:
    met = _report("d1", _size(10_000, "d1", [_run(1, 40.0, 20.0, 4.0), _run(2, 36.0, 22, 2)]))
    assert "the target of 1.5 is met" in " ".join(render(met, MACHINE).split())
    missed = _report("d1", _size(10_000, "d1", [_run(1, 40.0, 20.0, 4.0), _run(2, 30, 22, 2)]))
    assert "the target of 1.5 is not met" in " ".join(render(missed, MACHINE).split())


def test_a_run_of_one_size_keeps_the_other_from_the_last_report(tmp_path: Path) -> None:
    saved = tmp_path / "bench_nodered.json"
    first = _report(
        "d1",
        _size(1_000, "d1", [_run(1, 30.0, 100.0, 3.0)]),
        _size(10_000, "d1", [_run(1, 30.0, 150.0, 9.0)]),
    )
    keep_earlier_sizes(first, saved)
    second = _report("d2", _size(10_000, "d2", [_run(1, 31.0, 50.0, 5.0)]))
    keep_earlier_sizes(second, saved)
    assert [(s["devices"], s["date"]) for s in second["sizes"]] == [(1_000, "d1"), (10_000, "d2")]
    table = render(second, MACHINE)
    assert "| 1,000 | d1, ? | 1 |" in table
    assert "| 10,000 | d2, ? | 1 |" in table
    assert [s["date"] for s in json.loads(saved.read_text())["sizes"]] == ["d1", "d2"]


def test_another_backlog_size_is_not_mixed_in(tmp_path: Path) -> None:
    saved = tmp_path / "bench_nodered.json"
    keep_earlier_sizes(_report("d1", _size(1_000, "d1", [_run(1, 30.0, 100.0, 3.0)])), saved)
    quick = _report("d2", _size(10_000, "d2", [_run(1, 31.0, 50.0, 5.0)]))
    quick["heartbeats"] = 20_000
    keep_earlier_sizes(quick, saved)
    assert [s["devices"] for s in quick["sizes"]] == [10_000]

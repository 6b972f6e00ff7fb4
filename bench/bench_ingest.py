"""The monitor's per-heartbeat cost in one process: raw MQTT payload to queued device row.

A fresh process per variant builds a :class:`MonitorService` without broker or database
(as ``bench_monitor``'s memory part does) and feeds ``--devices`` devices ``--rounds``
protocol heartbeats each through :class:`Ingest.handle`, the call the MQTT link makes:
topic parsing, decoding and validation, the engine, rollups and status bookkeeping.
Every ``--window`` heartbeats is one flush window: the service hands dirty devices to
the write-behind, and every ``--write-every`` windows the write-behind takes its rows
(a database write outlasts several windows when the CPUs are busy, as they are in
``bench_monitor``), so the figures count the rows built for each one written.

Variants, in the same run: the collector as it was (``gc.freeze`` after load, default
thresholds) and with :func:`monitor.gc_policy.settle`; dirty devices drained every
window, or only once the write-behind took the last drain's rows (``when_taken``).
Reported: CPU µs per heartbeat (user + system of the process), the cyclic collector's
collections and the time spent in them (``gc.callbacks``), device rows built
(``put_device``) per row taken.

``python -m bench.bench_ingest`` (about a minute) prints JSON and rewrites the
``bench_ingest`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.monitor_common import PAYLOAD, in_child
from bench.monitor_memory import offline_service
from bench.perf_doc import finish
from monitor import gc_policy
from monitor.ingest import Ingest
from monitor.store.writer import WriteBehind

# (collector, drain): each step of the change on top of the one before.
VARIANTS = {
    "as before: freeze after load, a drain every window": ("freeze", False),
    "+ gc_policy.settle": ("settle", False),
    "+ drain once the last rows are taken": ("settle", True),
}


class _GcTimer:
    """Collections per generation and seconds spent in them, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def _taken(writer: WriteBehind) -> int:
    """What a successful write of the device rows takes out of the write-behind."""
    rows = writer.pending_devices
    writer._devices.clear()
    writer._devices_since = None
    return rows


def _feed_main(
    variant: str, devices: int, rounds: int, window: int, every: int, out: Connection
) -> None:
    collector, when_taken = VARIANTS[variant]
    service = offline_service()
    ingest = Ingest(service.topics, service, logging.getLogger("bench.ingest"))
    ids = [f"dev-{i:07d}" for i in range(devices)]
    topics = [service.topics.heartbeat(device_id) for device_id in ids]
    sessions = [f"{i:016x}" for i in range(devices)]
    now, wall = time.monotonic(), time.time()

    def one_round(seq: int, clock: float) -> float:
        payloads = [(PAYLOAD % (seq, s, wall + clock, 100.0 + clock)).encode() for s in sessions]
        started = time.process_time()
        for i, (topic, payload) in enumerate(zip(topics, payloads, strict=True)):
            ingest.handle(topic, payload, False, now + clock + i * 1e-6, wall + clock)
            if i % window == window - 1:
                flush_window()
        return time.process_time() - started

    windows = 0
    built = taken = 0

    def flush_window() -> None:
        nonlocal windows, taken
        windows += 1
        service.drain_dirty(when_taken=when_taken)
        if windows % every == 0:
            taken += _taken(service.writer)
        # Rollups are written every 10 s in the monitor; here they are simply dropped.
        service.writer._rollups.clear()

    one_round(0, 0.0)  # first contact: every device registered, as after a load
    service.drain_dirty()
    taken += _taken(service.writer)
    if collector == "freeze":
        gc.collect()
        gc.freeze()
    else:
        gc_policy.settle()
    puts_before, taken_before = service.writer.stats.device_puts, taken
    timer = _GcTimer()
    gc.callbacks.append(timer)
    cpu = sum(one_round(r, float(r)) for r in range(1, rounds + 1))
    gc.callbacks.remove(timer)
    service.drain_dirty()
    taken += _taken(service.writer)
    built = service.writer.stats.device_puts - puts_before
    assert ingest.counts["heartbeat_accepted"] == devices * (rounds + 1), ingest.counts
    out.send(
        {
            "variant": variant,
            "heartbeats": devices * rounds,
            "cpu_us_per_heartbeat": round(cpu / (devices * rounds) * 1e6, 2),
            "gc_collections": timer.collections,
            "gc_seconds": round(timer.seconds, 3),
            "gc_share": round(timer.seconds / cpu, 3) if cpu else None,
            "rows_built": built,
            "rows_taken": taken - taken_before,
        }
    )


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:  # interleaved: a change in load hits both
            runs[variant].append(
                in_child(
                    _feed_main, variant, args.devices, args.rounds, args.window, args.write_every
                )
            )
    summary = []
    for results in runs.values():
        best = min(results, key=lambda r: r["cpu_us_per_heartbeat"])
        best["cpu_us_range"] = [
            min(r["cpu_us_per_heartbeat"] for r in results),
            max(r["cpu_us_per_heartbeat"] for r in results),
        ]
        best["gc_seconds_median"] = statistics.median(r["gc_seconds"] for r in results)
        summary.append(best)
    return summary


def render(report: dict[str, Any], machine: dict[str, Any]) -> str:
    a = report["args"]
    lines = [
        "## Per-heartbeat cost in one process (`bench/bench_ingest.py`)",
        "",
        f"Measured {report['date']} on {machine['nproc']} CPUs ({machine['cpu']}), Python "
        f"{machine['python']}: {a['devices']:,} devices, {a['rounds']} heartbeats each "
        f"after first contact, a flush window every {a['window']:,} heartbeats, the "
        f"write-behind taking its rows every {a['write_every']} windows; best of "
        f"{a['repeats']} interleaved runs (range beside it). The machine was shared with "
        "other work: compare the rows of one run, not runs.",
        "",
        "| variant | CPU µs per heartbeat (range) | collections gen0/1/2 | "
        "time in collections | device rows built / taken |",
        "|---|---|---|---|---|",
    ]
    for r in report["results"]:
        low, high = r["cpu_us_range"]
        g0, g1, g2 = r["gc_collections"]
        lines.append(
            f"| {r['variant']} | **{r['cpu_us_per_heartbeat']}** ({low} to {high}) | "
            f"{g0:,} / {g1:,} / {g2:,} | {r['gc_seconds']:.2f} s "
            f"({r['gc_share']:.0%} of CPU) | {r['rows_built']:,} / {r['rows_taken']:,} |"
        )
    lines += [
        "",
        "How: each run is a fresh process; `Ingest.handle` gets the topic and the raw "
        "payload bench_monitor's publishers send, so decoding, validation, the engine, "
        "rollups and the write-behind's bookkeeping are all in the figure; the MQTT "
        "client, status publishing (no broker here) and the database are not. CPU time "
        "is the process's; collections and their time come from `gc.callbacks`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ingest", description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--write-every", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/performance.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.rounds, args.window, args.repeats = 1_000, 3, 1_000, 1
    report: dict[str, Any] = {
        "benchmark": "bench_ingest",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "args": {
            "devices": args.devices,
            "rounds": args.rounds,
            "window": args.window,
            "write_every": args.write_every,
            "repeats": args.repeats,
        },
        "results": measure(args),
    }
    finish("bench_ingest", report, render, write_doc=not (args.no_doc or args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pure in-process measurements of the liveness engine: no broker, no database, no I/O.

Run: ``.venv/bin/python bench/bench_engine.py [--quick]``; prints one JSON object.

* ``throughput``: heartbeats/s through ``LivenessEngine.heartbeat`` for 100k devices
  already tracked (Heartbeat objects built beforehand: decoding is the shell's cost).
* ``rss``: resident memory per tracked device at 100k and 1M devices, each size in its
  own subprocess (psutil RSS after building the fleet minus RSS before, divided by the
  device count). Every device has a 16-hex-character session, a seq, a timestamp, and
  a live deadline, i.e. the steady state of a real fleet.
* ``detection``: how long after its deadline a silent device is reported late/stale,
  at 100k devices ticked every 100 ms. Time is *simulated* (the engine takes time as
  an argument), so the figure is the deadline-to-tick gap plus the *real* CPU time
  spent on that slot's heartbeats and on the tick call that reported it -- what a shell
  loop doing the same work would add.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from device_client.protocol import Heartbeat
from monitor.liveness import LivenessEngine, State

T0 = 1_700_000_000.0
INTERVAL = 30.0
GRACE = 10.0


def _ids(count: int) -> list[str]:
    return [f"dev-{n:07d}" for n in range(count)]


def _session(n: int) -> str:
    return f"{n * 2654435761 % 2**64:016x}"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_throughput(devices: int, rounds: int) -> dict[str, Any]:
    engine = LivenessEngine()
    ids = _ids(devices)
    sessions = [_session(n) for n in range(devices)]
    for n, device_id in enumerate(ids):
        hb = Heartbeat(seq=0, session=sessions[n], interval=INTERVAL, ts=T0)
        engine.heartbeat(device_id, hb, 0.0, T0)
    batches = [
        [
            Heartbeat(seq=r, session=sessions[n], interval=INTERVAL, ts=T0 + r)
            for n in range(devices)
        ]
        for r in range(1, rounds + 1)
    ]
    heartbeat = engine.heartbeat
    start = time.perf_counter()
    for r, batch in enumerate(batches, start=1):
        now = r * 1.0
        wall = T0 + now
        for device_id, hb in zip(ids, batch, strict=True):
            heartbeat(device_id, hb, now, wall)
    elapsed = time.perf_counter() - start
    total = devices * rounds
    return {
        "devices": devices,
        "heartbeats": total,
        "seconds": round(elapsed, 3),
        "heartbeats_per_second": round(total / elapsed),
        "microseconds_per_heartbeat": round(elapsed / total * 1e6, 2),
        "heap_entries_after": engine.heap_size(),
    }


def rss_child(devices: int) -> dict[str, Any]:
    """Runs in its own process so each size starts from a clean interpreter."""
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    engine = LivenessEngine()
    heartbeat = engine.heartbeat
    # Two rounds: the second moves every deadline later, as steady beating does.
    for seq, now in ((0, 0.0), (1, 30.0)):
        wall = T0 + now
        for n in range(devices):
            hb = Heartbeat(seq=seq, session=_session(n), interval=INTERVAL, ts=wall)
            heartbeat(f"dev-{n:07d}", hb, now, wall)
    engine.tick(35.0, T0 + 35.0)
    engine.drain_dirty()
    gc.collect()
    after = process.memory_info().rss
    assert len(engine) == devices
    # Every record is a GC-tracked object: a full collection walks them all. Reported so
    # the shell can decide on gc.freeze() after loading a large fleet.
    start = time.perf_counter()
    gc.collect()
    full_gc = time.perf_counter() - start
    return {
        "devices": devices,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "bytes_per_device": round((after - before) / devices),
        "heap_entries": engine.heap_size(),
        "full_gc_ms": round(full_gc * 1e3, 1),
    }


def measure_rss(sizes: list[int]) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--rss-child", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(completed.stdout))
    return results


def measure_detection(devices: int, seconds: float, silent_fraction: float) -> dict[str, Any]:
    rng = random.Random(42)
    engine = LivenessEngine()
    ids = _ids(devices)
    sessions = [_session(n) for n in range(devices)]
    # Each device beats every INTERVAL at its own phase; a few stop at a random moment
    # after their first beat, so their deadlines are spread over the run rather than
    # bunched on one tick, and both late and stale fall inside it.
    phase = [rng.uniform(0.0, INTERVAL) for _ in range(devices)]
    stop_at = {
        n: rng.uniform(INTERVAL, seconds - INTERVAL * 3 - GRACE - 5.0)
        for n in rng.sample(range(devices), int(devices * silent_fraction))
    }
    schedule: list[tuple[float, int]] = []
    for n in range(devices):
        at = phase[n]
        while at < seconds and at < stop_at.get(n, seconds):
            schedule.append((at, n))
            at += INTERVAL
    schedule.sort()
    seqs = [0] * devices
    last_beat: dict[int, float] = {}
    tick_every = 0.1
    latencies: dict[State, list[float]] = {State.LATE: [], State.STALE: []}
    tick_costs: list[float] = []
    slot_costs: list[float] = []
    index = 0
    now = 0.0
    heartbeat = engine.heartbeat
    while now < seconds:
        now = round(now + tick_every, 6)
        start = time.perf_counter()
        while index < len(schedule) and schedule[index][0] <= now:
            at, n = schedule[index]
            seqs[n] += 1
            hb = Heartbeat(seq=seqs[n], session=sessions[n], interval=INTERVAL, ts=T0 + at)
            heartbeat(ids[n], hb, at, T0 + at)
            last_beat[n] = at
            index += 1
        beats_done = time.perf_counter()
        transitions = engine.tick(now, T0 + now)
        done = time.perf_counter()
        tick_costs.append(done - beats_done)
        slot_costs.append(done - start)
        for t in transitions:
            if t.new not in latencies:
                continue
            n = int(t.device_id[4:])
            due = INTERVAL + GRACE if t.new is State.LATE else INTERVAL * 3 + GRACE
            deadline = last_beat[n] + due
            latencies[t.new].append(now - deadline + (done - start))
    silent = len(stop_at)
    result: dict[str, Any] = {
        "devices": devices,
        "simulated_seconds": seconds,
        "tick_interval_s": tick_every,
        "time": "simulated clock; latency adds the real CPU time of the slot's work",
        "heartbeats": len(schedule),
        "silent_devices": silent,
        "tick_cpu_ms": {
            "p50": round(_percentile(tick_costs, 0.50) * 1e3, 3),
            "p99": round(_percentile(tick_costs, 0.99) * 1e3, 3),
            "max": round(max(tick_costs) * 1e3, 3),
        },
        "slot_cpu_ms_p99": round(_percentile(slot_costs, 0.99) * 1e3, 3),
    }
    for state, values in latencies.items():
        assert len(values) == silent, (state, len(values), silent)
        result[f"{state.value}_detection_ms"] = {
            "count": len(values),
            "p50": round(_percentile(values, 0.50) * 1e3, 1),
            "p99": round(_percentile(values, 0.99) * 1e3, 1),
            "max": round(max(values) * 1e3, 1),
            "mean": round(statistics.fmean(values) * 1e3, 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        print(json.dumps(rss_child(args.rss_child)))
        return
    sizes = [10_000, 100_000] if args.quick else [100_000, 1_000_000]
    devices = 10_000 if args.quick else 100_000
    report = {
        "benchmark": "liveness engine (pure, in-process)",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "throughput": measure_throughput(devices, rounds=3 if args.quick else 10),
        "rss": measure_rss(sizes),
        "detection": measure_detection(
            devices, seconds=150.0 if args.quick else 240.0, silent_fraction=0.01
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

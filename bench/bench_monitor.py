"""End-to-end monitor benchmark: MQTT -> monitor -> committed PostgreSQL state.

Three measurements; whatever is measured runs in its own process, so CPU time and
memory are its alone:

1. **Throughput.** A real Mosquitto (the project's ``mosquitto.conf``, via the test
   harness) and a throwaway PostgreSQL cluster. ``--devices`` device users publish
   protocol heartbeats (QoS 1, retained, as protocol v1 says) from ``--publishers``
   paho processes, one MQTT connection per device (the ACL lets a device write only
   its own topics). The load goes first to a bare aiomqtt loop that only counts, then
   to the real :class:`MonitorService` writing to PostgreSQL, each in two timed
   phases: *live* (receiver running while the publishers go) and *backlog* (receiver
   stopped with SIGSTOP while they publish, timed from SIGCONT: its capacity without
   the load generator on the same CPUs). Reported: messages/s, receiver CPU seconds,
   and for the monitor the time until every device's last ``seq`` is committed.
2. **Memory per device** of the monitor's state (engine + service dicts) at 100k and
   1M devices, heartbeats fed through ``MonitorService.heartbeat`` (the call ingest
   makes), RSS delta measured with psutil.
3. **Detection latency** at 100k devices all missing their heartbeats, deadlines
   spread over 10 s: the service's own tick loop (100 ms, real ``time.monotonic``) and
   transition handling; latency = transitions handled - deadline.

``python -m bench.bench_monitor`` (3 to 4 minutes; ``--quick`` for a smoke run)
prints JSON and rewrites the ``bench_monitor`` section of ``docs/performance.md``.
``--profile`` adds a cProfile of the monitor process (which slows it: don't compare
those figures), ``--skip PART`` leaves a part out.

This file holds the command line; each part lives in its own module
(``monitor_throughput``, ``monitor_memory``, ``monitor_latency``), the report in
``monitor_report`` and what they share in ``monitor_common``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.monitor_common import say
from bench.monitor_latency import bench_latency
from bench.monitor_memory import bench_memory
from bench.monitor_report import render_section, write_doc
from bench.monitor_throughput import Load, bench_throughput
from bench.perf_doc import machine


def _profile_summary(path: Path, limit: int = 20) -> str:
    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    lines = buffer.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


@contextlib.contextmanager
def _timer() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_monitor", description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--live-rounds", type=int, default=20, help="heartbeats per device")
    parser.add_argument("--backlog-rounds", type=int, default=30, help="heartbeats per device")
    parser.add_argument(
        "--broker-option", action="append", default=[], help="extra mosquitto.conf line"
    )
    parser.add_argument("--memory-sizes", default="100000,1000000")
    parser.add_argument("--latency-devices", type=int, default=100_000)
    parser.add_argument("--latency-spread", type=float, default=10.0)
    parser.add_argument("--skip", action="append", default=[], help="throughput|memory|latency")
    parser.add_argument("--profile", action="store_true", help="cProfile the monitor process")
    parser.add_argument("--profile-out", type=Path, help="keep the monitor's cProfile data here")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/performance.md")
    parser.add_argument(
        "--engine-breakdown",
        action="store_true",
        help="also measure the engine alone (bench_engine's rss_child) per size",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.live_rounds, args.backlog_rounds = 500, 3, 3
        args.latency_devices = 5_000
        args.memory_sizes = "20000"
    report: dict[str, Any] = {
        "benchmark": "bench_monitor",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine(),
    }
    parts: dict[str, Callable[[], Any]] = {
        "throughput": lambda: _throughput_part(args, report),
        "memory": lambda: bench_memory(
            [int(size) for size in args.memory_sizes.split(",") if size],
            engine_breakdown=args.engine_breakdown,
        ),
        "latency": lambda: bench_latency(args.latency_devices, args.latency_spread),
    }
    errors: list[str] = []
    with _timer() as elapsed:
        for name, run in parts.items():
            if name in args.skip:
                continue
            try:
                report[name] = run()
            except Exception as exc:  # one failed part must not lose the others
                say(f"{name} failed: {exc!r}")
                errors.append(f"{name}: {exc}")
        report["seconds"] = round(elapsed(), 1)
    if errors:
        report["errors"] = errors
    print(json.dumps(report, indent=2))
    if not args.no_doc and not args.quick:
        write_doc(render_section(report))
    return 1 if errors else 0


def _throughput_part(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clawbeat-prof-") as tmp:
        prof = args.profile_out or (Path(tmp) / "monitor.prof" if args.profile else None)
        result = bench_throughput(
            Load(args.devices, args.publishers, args.live_rounds, args.backlog_rounds),
            profile=prof,
            broker_options=args.broker_option,
        )
        if prof is not None and prof.exists():
            report["profile"] = _profile_summary(prof)
    return result


if __name__ == "__main__":
    sys.exit(main())

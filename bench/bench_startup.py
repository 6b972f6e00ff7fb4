"""Monitor start-up: rebuilding the in-memory state of a large fleet from the database.

A restart (an upgrade, a crash, a host move) is blind until the monitor has loaded every
device; warm-up only starts after that. This measures how long ``MonitorService``'s
load takes — schema check, classes, every device row streamed from the database, the
engine rebuilt (records and deadline heap), long-lived objects frozen out of the
garbage collector — on PostgreSQL (a throwaway cluster, as in ``bench_monitor``) and on
the embedded SQLite default, in a fresh process each, with its RSS afterwards.

``python -m bench.bench_startup`` (about 2 minutes at the default 1,000,000 devices)
prints JSON and rewrites the ``bench_startup`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from bench.monitor_common import in_child
from bench.perf_doc import finish
from monitor.liveness.engine import LivenessEngine
from monitor.parts import open_monitor
from monitor.settings import MonitorSettings
from monitor.state_rows import engine_snapshot
from monitor.store import repository
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.migrate import check_schema, upgrade
from monitor.store.rows import DeviceRow

_SEED_CHUNK = 10_000


def _say(message: str) -> None:
    print(f"[bench_startup {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _seed(url: str, devices: int) -> float:
    """Write ``devices`` device rows as the monitor's write-behind would; returns seconds."""
    await upgrade(url)
    engine = create_engine_for(url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    started = time.monotonic()
    try:
        for first in range(0, devices, _SEED_CHUNK):
            rows = [
                DeviceRow(
                    id=f"dev-{i:07d}",
                    state="online",
                    since=now,
                    reason="heartbeat",
                    session=f"{i:016x}",
                    last_seq=42,
                    last_seen=now,
                    announced_interval=30.0,
                    fw="1.4.2",
                    latest_metrics={"rssi": -61, "battery_v": 3.71},
                )
                for i in range(first, min(first + _SEED_CHUNK, devices))
            ]
            async with sessions() as session, session.begin():
                await repository.upsert_devices(session, rows=rows, now=now)
    finally:
        await engine.dispose()
    return time.monotonic() - started


async def _open_engine(settings: MonitorSettings) -> LivenessEngine:
    """The monitor's start-up load (:func:`open_monitor`), its engine kept."""
    parts = await open_monitor(settings)
    await parts.close()
    return parts.engine


def _load_main(url: str, path: str, out: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    settings = MonitorSettings(database_url=url, log_level="WARNING")
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.perf_counter()
    cpu_started = time.process_time()
    loading = _open_engine(settings) if path == "stream" else _orm_load(url)
    engine = asyncio.run(loading)  # the start-up step measured
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    out.send(
        {
            "path": path,
            "devices": len(engine),
            "load_s": round(seconds, 2),
            "cpu_s": round(cpu, 2),
            "devices_per_s": round(len(engine) / seconds),
            "rss_after_mib": round(process.memory_info().rss / 2**20, 1),
            "rss_growth_mib": round((process.memory_info().rss - before) / 2**20, 1),
            "bytes_per_device": round((process.memory_info().rss - before) / len(engine)),
        }
    )


async def _orm_load(url: str) -> LivenessEngine:
    """The baseline: the start-up load as it was before the tuple stream -- SQLAlchemy
    result rows, a row dataclass and a snapshot per device, one heap push each, the
    collector on."""
    await check_schema(url)
    db = create_engine_for(url)
    sessions = make_session_factory(db)
    try:
        async with sessions() as session:
            engine = LivenessEngine()
            now, wall = time.monotonic(), time.time()
            async for partition in repository.iter_devices(session):
                engine.load([engine_snapshot(s) for s in partition], now, wall)
    finally:
        await db.dispose()
    gc.collect()
    gc.freeze()
    return engine


def _measure(name: str, url: str, devices: int, rounds: int) -> dict[str, Any]:
    _say(f"{name}: seeding {devices:,} devices")
    seed_s = asyncio.run(_seed(url, devices))
    result: dict[str, Any] = {"database": name, "seed_s": round(seed_s, 1)}
    # Alternating, a fresh process each: the machine's load drifts during a run.
    for path in ("orm", "stream") * rounds:
        _say(f"{name}: loading them in a fresh process ({path})")
        result.setdefault(path, []).append(in_child(_load_main, url, path, timeout=900))
    return result


def run(devices: int, databases: list[str], rounds: int) -> dict[str, Any]:
    from tests.harness.postgres import obtain_server  # noqa: PLC0415 - bench-only deps

    results: list[dict[str, Any]] = []
    runners: dict[str, Callable[[], dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="clawbeat-bench-startup-") as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'clawbeat.db'}"
        runners["sqlite"] = lambda: _measure("SQLite", sqlite_url, devices, rounds)

        def postgresql() -> dict[str, Any]:
            with obtain_server() as server:
                url = server.create_database("clawbeat_bench_startup")
                return _measure("PostgreSQL", url, devices, rounds)

        runners["postgresql"] = postgresql
        for name in databases:
            results.append(runners[name]())
    return {"benchmark": "bench_startup", "date": time.strftime("%Y-%m-%d"), "runs": results}


def _span(values: list[float], unit: str = " s") -> str:
    low, high = min(values), max(values)
    return f"{low}{unit}" if low == high else f"{low} to {high}{unit}"


def render(report: dict[str, Any], m: dict[str, Any]) -> str:
    lines = [
        "## Monitor start-up (`bench/bench_startup.py`)",
        "",
        f"Measured {report['date']} on {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}; "
        f"{report['rounds']} round(s) per path, the ranges are over them.",
        "",
        "| database | devices | load path | wall | CPU | RSS after | RSS growth per device |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        for path, label in (("orm", "ORM rows (baseline)"), ("stream", "tuple stream")):
            runs = r[path]
            lines.append(
                f"| {r['database']} | {runs[0]['devices']:,} | {label} "
                f"| {_span([x['load_s'] for x in runs])} "
                f"| **{_span([x['cpu_s'] for x in runs])}** "
                f"| {_span([x['rss_after_mib'] for x in runs], ' MiB')} "
                f"| {_span([x['bytes_per_device'] for x in runs], ' bytes')} |"
            )
        ratio = min(x["cpu_s"] for x in r["orm"]) / min(x["cpu_s"] for x in r["stream"])
        lines.append(f"| {r['database']} | | CPU baseline / stream | **{ratio:.1f} times** | | | |")
    lines += [
        "",
        "How: the device rows are first written as the write-behind writes them "
        "(`repository.upsert_devices`, 10,000 per transaction; a session, last seq, "
        "`fw` and two metrics each). Then a fresh process times one start-up load; the "
        "two paths alternate. *tuple stream* is `MonitorService`'s load: schema check, "
        "device classes, every device row streamed by the database driver as a plain "
        "tuple with its times as epoch seconds (`store/device_stream.py`: asyncpg's "
        "server-side cursor with the next chunk fetched while the engine builds records "
        "from this one; sqlite3's cursor), the engine built in bulk "
        "(`LivenessEngine.load_persisted`: one heapify, not a push per device) with the "
        "collector off, then `gc.freeze()`. *ORM rows* is the path before it, kept as "
        "the baseline: SQLAlchemy result rows, the `UTCDateTime` conversion, a "
        "`StoredDevice` and a `DeviceSnapshot` per row (`LivenessEngine.load`, which "
        "now builds in bulk too), with the collector on. *CPU* is the process's user + system "
        "time (the database server's is not in it); on this shared machine the wall "
        "time follows the other work on it, the CPU time much less. PostgreSQL is a "
        "throwaway cluster with `fsync=off` on the same machine; SQLite a file in a "
        "temporary directory. After the load the monitor connects to the broker and "
        "starts warm-up (one interval + grace), during which nothing times out. *RSS "
        "growth per device* is the process's RSS after the load minus before, divided by "
        "the devices.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_startup", description=__doc__)
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--database", action="append", choices=["postgresql", "sqlite"], default=[])
    parser.add_argument("--rounds", type=int, default=2, help="loads per path and database")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/performance.md")
    args = parser.parse_args(argv)
    report = run(args.devices, args.database or ["postgresql", "sqlite"], args.rounds)
    report["rounds"] = args.rounds
    finish("bench_startup", report, render, write_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

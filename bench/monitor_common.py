"""Shared by the monitor benchmark's parts: constants, progress output, process figures,
and running a part in a child process of its own.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psutil

from device_client.protocol import DEFAULT_TOPIC_ROOT, Heartbeat, Topics

REPO: Final = Path(__file__).resolve().parents[1]

TOPICS: Final = Topics(DEFAULT_TOPIC_ROOT)
# A realistic heartbeat (~130 bytes): the fields a device SDK sends, a couple of metrics.
PAYLOAD: Final = (
    '{"seq":%d,"session":"%s","interval":60,"ts":%.3f,"uptime":%.1f,'
    '"fw":"1.4.2","metrics":{"rssi":-61,"battery_v":3.71}}'
)
STALL_SECONDS: Final = 5.0
MP: Final = mp.get_context("spawn")


def say(message: str) -> None:
    """Progress on stderr; stdout carries only the JSON report."""
    print(f"[bench_monitor {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss() -> int:
    gc.collect()
    rss: int = psutil.Process().memory_info().rss
    return rss


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def device_ids(count: int) -> list[str]:
    return [f"bench-{i:06d}" for i in range(count)]


def heartbeat(seq: int, session: str, interval: float, wall: float) -> Heartbeat:
    return Heartbeat(
        seq=seq,
        session=session,
        interval=interval,
        ts=wall,
        uptime=1260.5,
        fw="1.4.2",
        metrics={"rssi": -61, "battery_v": 3.71},
    )


def in_child(target: Callable[..., None], *args: object, timeout: float = 300) -> Any:
    """Run ``target(*args, pipe)`` in a fresh process and return what it sends."""
    parent, child = MP.Pipe()
    proc = MP.Process(target=target, args=(*args, child))
    proc.start()
    deadline = time.monotonic() + timeout
    try:
        while not parent.poll(0.2):
            if not proc.is_alive():
                raise RuntimeError(f"{target.__name__}{args} exited with {proc.exitcode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.__name__}{args} produced nothing in {timeout}s")
        return parent.recv()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()

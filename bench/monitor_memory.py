"""Memory part of the monitor benchmark: RSS per device of the monitor's state, heartbeats
fed as ingest feeds them.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any

from bench.monitor_common import heartbeat, in_child, rss, say
from device_client.protocol import Topics
from monitor.forgotten_devices import ForgottenDevices
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.policy import DEFAULT_CLASS, Policy
from monitor.parts import MonitorParts, broker_addresses, default_timing
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.rows import DeviceRow, TransitionRow
from monitor.store.writer import WriteBehind


class _FlushedWriter(WriteBehind):
    """A write-behind whose every flush has just succeeded: nothing stays pending.

    Stands in for the steady state, where each flush window empties the buffers.
    """

    def put_device(self, row: DeviceRow) -> None:  # noqa: ARG002 - dropped on purpose
        self.stats.device_puts += 1

    def put_transition(self, row: TransitionRow) -> None:
        pass

    def add_rollup(
        self,
        device_id: str,
        minute: Any,
        *,
        count: int = 1,
        missed: int = 0,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
    ) -> None:
        pass


def offline_service(
    classes: dict[str, Policy] | None = None, service_cls: type[MonitorService] = MonitorService
) -> MonitorService:
    """A MonitorService built from parts made here, as :func:`open_monitor` makes them
    (an empty engine, an in-memory database), without a broker."""
    settings = MonitorSettings(database_url="sqlite+aiosqlite://", log_level="WARNING")
    db = create_engine_for(settings.database_url)
    parts = MonitorParts(
        addresses=broker_addresses(settings),
        db=db,
        sessions=make_session_factory(db),
        engine=LivenessEngine(
            classes=classes or {DEFAULT_CLASS: Policy()},
            default_interval=settings.default_interval,
            will_hold=settings.will_hold,
        ),
        config=default_timing(settings),
        forgotten=ForgottenDevices(Topics(settings.topic_root)),
        file_adapters=[],
        stored_sources={},
        replica_lock=None,
    )
    return service_cls(settings, parts)


def _memory_main(devices: int, out: Connection) -> None:
    """RSS per device of the monitor's state, heartbeats fed as ingest feeds them."""
    service = offline_service()
    service.writer = _FlushedWriter(service.sessions)
    assert service.engine is not None
    now, wall = time.monotonic(), time.time()
    service.heartbeat("warm-up", heartbeat(0, "s0", 30.0, wall), retained=False, now=now, wall=wall)
    service.drain_dirty()
    before = rss()
    started = time.perf_counter()
    for i in range(devices):
        # One session per device (16 hex chars, as device SDKs make them).
        hb = heartbeat(0, f"{i:016x}", 30.0, wall)
        service.heartbeat(f"dev-{i:07d}", hb, retained=False, now=now + i * 1e-6, wall=wall)
        if i % 10_000 == 9_999:
            # One flush window: dirty devices handed to the (already flushed) writer.
            service.drain_dirty()
    service.drain_dirty()
    feed_seconds = time.perf_counter() - started
    steady = rss()

    # The transient a flush window adds: rollups, latest metrics and device rows of the
    # devices that beat within it, held until the batch is written.
    window = min(devices, 100_000)
    service.writer = WriteBehind(service.sessions)
    for i in range(window):
        hb = heartbeat(1, f"{i:016x}", 30.0, wall + 1)
        service.heartbeat(f"dev-{i:07d}", hb, retained=False, now=now + 1 + i * 1e-6, wall=wall + 1)
    service.drain_dirty()
    pending = rss()
    out.send(
        {
            "devices": devices,
            "tracked": len(service.engine),
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(steady / 2**20, 1),
            "bytes_per_device": round((steady - before) / devices),
            "heartbeats_per_s_service_path": round(devices / feed_seconds),
            "pending_window_devices": window,
            "pending_bytes_per_device": round((pending - steady) / window),
        }
    )


def _engine_memory_main(devices: int, out: Connection) -> None:
    """The engine alone, for the breakdown: bench_engine's own measurement, reused."""
    from bench.bench_engine import rss_child  # noqa: PLC0415 - only in this child

    out.send(rss_child(devices))


def bench_memory(sizes: list[int], *, engine_breakdown: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"service": []}
    for size in sizes:
        say(f"memory at {size} devices")
        result["service"].append(in_child(_memory_main, size))
        if engine_breakdown:
            result.setdefault("engine_only", []).append(in_child(_engine_memory_main, size))
    return result

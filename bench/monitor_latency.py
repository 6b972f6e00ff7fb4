"""Detection-latency part of the monitor benchmark: many devices missing their heartbeats
at once, handled by the service's own tick loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.monitor_common import heartbeat, in_child, percentiles, say
from bench.monitor_memory import offline_service
from monitor.liveness.policy import DEFAULT_CLASS, Policy
from monitor.liveness.states import State, Transition
from monitor.mqtt_link import LinkOptions, MqttLink
from monitor.service import MonitorService
from monitor.sight import Sight


class _TimedService(MonitorService):
    """Records, for each late transition, how long after its deadline it was handled."""

    deadlines: dict[str, float]
    latencies: list[float]
    expected: int
    all_detected: asyncio.Event

    def _apply(self, transitions: tuple[Transition, ...] | list[Transition]) -> None:
        super()._apply(transitions)
        handled = time.monotonic()
        for tr in transitions:
            if tr.new is State.LATE:
                self.latencies.append(handled - self.deadlines[tr.device_id])
        if len(self.latencies) >= self.expected:
            self.all_detected.set()


def _latency_main(devices: int, spread: float, out: Connection) -> None:
    grace = 1.0
    service = offline_service({DEFAULT_CLASS: Policy(grace=grace)}, _TimedService)
    assert isinstance(service, _TimedService)
    service.deadlines = {}
    service.latencies = []
    service.all_detected = asyncio.Event()
    service.expected = devices
    # A link that is never connected: status payloads are built and queued as in
    # production, only the socket write is missing.
    service.link = MqttLink(
        LinkOptions(
            address=service.address,
            client_id="bench",
            keepalive=10,
            subscriptions=(),
            will_topic=service.topics.monitor_presence,
            will_payload=b"",
        ),
        on_message=lambda *_: None,
        on_connected=_noop_async,
        on_disconnected=lambda: None,
    )
    with tempfile.TemporaryDirectory(prefix="clawbeat-bench-log-") as tmp:
        # Transitions are logged at INFO in production: pay for it, into a file.
        handler = logging.FileHandler(Path(tmp) / "monitor.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log = logging.getLogger("clawbeat.monitor")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        engine = service.engine
        assert engine is not None
        wall = time.time()
        # Registration first (first contact is not what is measured), straight into the
        # engine: only the tick and transition handling below are timed.
        registering = time.monotonic()
        for i in range(devices):
            hb = heartbeat(0, f"{i:016x}", 60.0, wall)
            engine.heartbeat(f"dev-{i:07d}", hb, time.monotonic(), wall)
        # Then one heartbeat each at t1, with intervals spread so that the late deadlines
        # fall uniformly over `spread` seconds, starting once this loop is surely done.
        t1 = time.monotonic()
        first = 2 * (t1 - registering) + 0.5
        for i in range(devices):
            interval = first + spread * i / devices
            device_id = f"dev-{i:07d}"
            engine.heartbeat(device_id, heartbeat(1, f"{i:016x}", interval, wall), t1, wall)
            service.deadlines[device_id] = t1 + interval + grace
        engine.drain_dirty()
        if min(service.deadlines.values()) < time.monotonic():
            raise RuntimeError("feeding the devices took longer than the first deadline")

        async def run() -> None:
            # Sight as run() builds it (never connected: only a stall of the loop itself
            # would make it blind), from the moment the tick loop starts.
            timeout, every = service._probe_timing()
            service.sight = Sight(
                timeout=timeout, every=every, now=time.monotonic(), wall=time.time()
            )
            ticker = asyncio.create_task(service._tick_loop())
            timeout = max(service.deadlines.values()) + 5 - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(service.all_detected.wait(), timeout)
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

        asyncio.run(run())
        handler.close()
    lat = service.latencies
    out.send(
        {
            "devices": devices,
            "deadline_spread_s": spread,
            "tick_interval_s": service.settings.tick_interval,
            "detected": len(lat),
            "latency_s": {k: round(v, 4) for k, v in percentiles(lat).items()},
        }
    )


async def _noop_async() -> None:
    return None


def bench_latency(devices: int, spread: float) -> dict[str, Any]:
    say(f"detection latency at {devices} devices")
    result: dict[str, Any] = in_child(_latency_main, devices, spread)
    return result

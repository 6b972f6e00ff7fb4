"""Probes and Prometheus metrics of a running monitor."""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.parts import MonitorParts
from monitor.service import MonitorService
from tests.harness.api import FakeDevice, RunningMonitor, wait_for
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def _samples(
    monitor_api: RunningMonitor,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with monitor_api.client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), float("nan"))


async def test_live_and_ready(monitor_api: RunningMonitor, broker: TestBroker) -> None:
    async with monitor_api.client() as client:
        live = await client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["ready"] is True
        assert set(body["checks"]) == {"engine", "broker", "database", "write_behind"}
        assert all(check["ok"] for check in body["checks"].values())

        # The broker goes away: not ready (503), the failing check says why; live stays up.
        broker.stop()
        try:

            async def not_ready() -> bool:
                response = await client.get("/health/ready")
                # Until the first reconnect attempt has failed the detail says "connecting".
                return response.status_code == 503 and "cannot connect" in response.text

            await wait_for(not_ready, timeout=20, what="ready to turn 503, saying why")
            body = (await client.get("/health/ready")).json()
            assert body["ready"] is False
            broker_check = body["checks"]["broker"]
            assert broker_check["ok"] is False
            assert broker_check["detail"].startswith("not connected to the broker since ")
            assert (
                f"cannot connect to mqtt://monitor@{broker.host}:{broker.port}"
                in (broker_check["detail"])
            )
            assert "connection refused" in broker_check["detail"]
            assert body["checks"]["database"]["ok"] is True
            assert (await client.get("/health/live")).status_code == 200
            samples = await _samples(monitor_api)
            assert _value(samples, "clawbeat_broker_connected") == 0.0
        finally:
            broker.start()

        async def ready_again() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await wait_for(ready_again, timeout=30, what="ready again after the broker is back")


async def test_metrics_follow_the_fleet(monitor_api: RunningMonitor, broker: TestBroker) -> None:
    device = FakeDevice(broker, "pump-9")
    try:
        for _ in range(4):
            await device.beat(interval=0.2)
        device.seq = 0
        await device.beat(interval=0.2)  # seq 0 again: a duplicate
        # Garbage on a device topic: counted as invalid, by kind.
        garbage = MqttProbe(broker.url("pump-9"), client_id="pump-9-garbage")
        await asyncio.to_thread(garbage.connect)
        await asyncio.to_thread(
            garbage.publish, "clawbeat/v1/devices/pump-9/heartbeat", b"{not json"
        )
        garbage.close()
    finally:
        device.close()

    # online, late, stale: three transition rows, written behind the state change, so
    # the gauge can show stale a flush window before the third row is counted.
    async def stale_and_written() -> bool:
        samples = await _samples(monitor_api)
        return (
            _value(samples, "clawbeat_devices", state="stale") == 1.0
            and _value(samples, "clawbeat_store_rows_written_total", kind="transitions") >= 3
        )

    # Stale is due about 1.4 s after the last beat (2 x 0.2 s + 1 s grace); the rest of
    # the margin is for a loaded machine, where scheduling, not the monitor, is slow.
    await wait_for(stale_and_written, timeout=30, what="the stale gauge and its transition rows")
    samples = await _samples(monitor_api)
    assert _value(samples, "clawbeat_devices", state="online") == 0.0
    assert _value(samples, "clawbeat_heartbeats_received_total", outcome="accepted") >= 4
    assert _value(samples, "clawbeat_duplicate_heartbeats_total") >= 1
    assert _value(samples, "clawbeat_invalid_messages_total", kind="invalid_payload") >= 1
    assert _value(samples, "clawbeat_invalid_messages_total", kind="oversized") == 0
    assert _value(samples, "clawbeat_transitions_total", state="stale") == 1
    assert _value(samples, "clawbeat_broker_connected") == 1.0
    assert _value(samples, "clawbeat_store_up") == 1.0
    # late and stale came from deadlines: two detection latency observations, each
    # within a few ticks of its deadline.
    assert _value(samples, "clawbeat_detection_latency_seconds_count") == 2
    assert _value(samples, "clawbeat_detection_latency_seconds_bucket", le="1.0") == 2
    assert _value(samples, "clawbeat_store_flush_seconds_count") > 0
    assert _value(samples, "clawbeat_store_batch_rows_count", kind="transitions") >= 1

    async with monitor_api.client() as client:
        text = (await client.get("/metrics")).text
    # Every family is documented.
    for name in re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE):
        assert f"# HELP {name} " in text


async def test_each_monitor_has_its_own_registry(monitor_api: RunningMonitor) -> None:
    running = monitor_api.service
    # The running monitor's connections and state (a second open would meet SQLite's
    # single-replica lock): only the registry is the other service's own.
    parts = MonitorParts(
        addresses=(running.address,),
        db=running.db,
        sessions=running.sessions,
        engine=running.engine,
        config=running.config,
        forgotten=running.forgotten,
        file_adapters=[],
        stored_sources={},
        replica_lock=None,
    )
    other = MonitorService(running.settings, parts)
    assert other.metrics.registry is not monitor_api.service.metrics.registry
    # Both render; registering the same names twice in one process is no error.
    assert b"clawbeat_devices" in other.metrics.render()
    assert b"clawbeat_devices" in monitor_api.service.metrics.render()

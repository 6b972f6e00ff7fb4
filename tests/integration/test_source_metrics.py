"""A source's messages are counted in /metrics; what its devices report is kept."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.api import running_monitor, wait_for
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def test_source_results_in_metrics(
    broker: TestBroker, database_url: str, tmp_path: Path
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text('[[source]]\nname = "plugs"\nkind = "tasmota"\ninterval = 30\n')
    broker.allow(broker.monitor_user, read=["tele/#"])
    broker.allow("plug-1", write=["tele/plug-1/#"])
    async with running_monitor(broker, database_url, sources_file=sources) as monitor:
        plug = MqttProbe(broker.url("plug-1"), client_id="plug-1")
        await asyncio.to_thread(plug.connect)
        try:
            for payload in (b'{"UptimeSec": 1}', b'{"UptimeSec": 2}', b"{not json"):
                await asyncio.to_thread(plug.publish, "tele/plug-1/STATE", payload)
            await asyncio.to_thread(plug.publish, "tele/plug-1/LWT", b"Offline")
        finally:
            plug.close()

        async def counted() -> dict[str, float] | None:
            async with monitor.client() as client:
                text = (await client.get("/metrics")).text
            found = {
                s.labels["result"]: s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "clawbeat_source_messages_total" and s.labels["source"] == "plugs"
            }
            return found if found.get("received") == 4 else None

        results = await wait_for(counted, what="four messages counted for the source")
        assert results["heartbeat_accepted"] == 2
        assert results["invalid_payload"] == 1
        assert results["presence_will-held"] == 1


async def test_a_reported_json_object_becomes_the_devices_latest_metrics(
    broker: TestBroker, database_url: str, tmp_path: Path
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text('[[source]]\nname = "plugs"\nkind = "tasmota"\ninterval = 30\n')
    broker.allow(broker.monitor_user, read=["tele/#"])
    broker.allow("plug-2", write=["tele/plug-2/#"])
    sensor = {"Time": "2026-12-03T15:10:00", "AM2301": {"Temperature": 21.4, "Humidity": 40.1}}
    async with running_monitor(broker, database_url, sources_file=sources) as monitor:
        plug = MqttProbe(broker.url("plug-2"), client_id="plug-2")
        await asyncio.to_thread(plug.connect)
        try:
            await asyncio.to_thread(plug.publish, "tele/plug-2/SENSOR", json.dumps(sensor))
        finally:
            plug.close()
        async with monitor.reader() as reader:

            async def shown() -> dict[str, object] | None:
                response = await reader.get("/api/devices/plug-2")
                body: dict[str, object] = response.json() if response.status_code == 200 else {}
                return body if body.get("metrics") else None

            body = await wait_for(shown, what="plug-2 with its metrics")
        assert body["metrics"] == sensor
        assert body["state"] == "online"

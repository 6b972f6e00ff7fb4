"""A source's messages are counted in /metrics, by source and result."""

from __future__ import annotations

import asyncio
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

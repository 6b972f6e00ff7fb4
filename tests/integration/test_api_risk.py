"""At-risk scoring end to end: heartbeats over a real broker, scored, shown by the API.

A device that keeps reconnecting with a nearly empty battery is flagged with both
reasons in words; a steady neighbour is not. Scoring runs on its schedule in a worker
thread (``CLAWBEAT_RISK_CYCLE``); with no history yet the mode is ``rules``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.harness.api import FakeDevice, RunningMonitor, running_monitor, wait_for
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.anyio

CYCLE = 0.3


@pytest.fixture
async def monitor(broker: TestBroker, database_url: str) -> AsyncIterator[RunningMonitor]:
    async with running_monitor(broker, database_url, risk_cycle=CYCLE) as running:
        yield running


@pytest.fixture
def devices(broker: TestBroker) -> Iterator[tuple[FakeDevice, FakeDevice]]:
    failing = FakeDevice(broker, "pump-7")
    steady = FakeDevice(broker, "pump-8")
    yield failing, steady
    failing.close()
    steady.close()


async def test_api_exposes_risk_and_reasons_for_a_degrading_device(
    monitor: RunningMonitor, devices: tuple[FakeDevice, FakeDevice]
) -> None:
    failing, steady = devices
    await steady.beat(interval=60, uptime=5000, metrics={"battery_pct": 91})
    await failing.beat(interval=60, uptime=4000, metrics={"battery_pct": 3})
    for k in range(8):  # eight reconnects: a new session each time, uptime going on
        failing.session = f"s{k + 2}"
        failing.seq = 0
        await failing.beat(interval=60, uptime=4001 + k, metrics={"battery_pct": 3})
    await steady.beat(interval=60, uptime=5001, metrics={"battery_pct": 91})

    async with monitor.reader() as reader:

        async def device(name: str) -> dict[str, Any]:
            response = await reader.get(f"/api/devices/{name}")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        async def flagged() -> bool:
            risk = (await device("pump-7"))["risk"]
            return risk is not None and risk["level"] != "low"

        # Several cycles: the reconnects must all have been heard before scoring counts.
        await wait_for(flagged, timeout=20 * CYCLE + 10, what="pump-7 flagged")
        body = await device("pump-7")
        assert body["risk"]["mode"] == "rules"
        assert body["risk"]["within_1h"] is None  # probabilities come with a model only
        reasons = body["risk_reasons"]
        assert any(r.startswith("battery 3 %") for r in reasons), reasons
        assert any("reconnects in the last hour" in r for r in reasons), reasons
        assert 2 <= len(reasons) <= 3

        neighbour = await device("pump-8")
        assert neighbour["risk"] is not None
        assert neighbour["risk"]["level"] == "low"
        assert neighbour["risk_reasons"] == []

        async def listed_both() -> list[dict[str, Any]]:
            # The list reads the stored rows, written behind within a flush window.
            items: list[dict[str, Any]] = (await reader.get("/api/devices")).json()["items"]
            return items if len(items) == 2 else []

        listed = await wait_for(listed_both, what="both devices stored")
        assert {d["id"]: d["risk"]["level"] != "low" for d in listed} == {
            "pump-7": True,
            "pump-8": False,
        }

        at_risk = await reader.get("/api/at-risk")
        assert at_risk.status_code == 200, at_risk.text
        page = at_risk.json()
        assert page["mode"] == "rules"
        assert page["model"] is None
        assert page["scored"] == 2
        assert [item["id"] for item in page["items"]] == ["pump-7"]
        assert page["items"][0]["reasons"] == reasons

        metrics = await httpx.AsyncClient(base_url=monitor.base_url).get("/metrics")
        text = metrics.text
        assert 'clawbeat_risk_mode{mode="rules"} 1.0' in text
        flagged_levels = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("clawbeat_devices_at_risk{") and 'level="low"' not in line
        )
        assert flagged_levels == 1.0
        assert 'clawbeat_devices_at_risk{level="low"} 1.0' in text

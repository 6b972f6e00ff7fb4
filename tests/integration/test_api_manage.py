"""Admin endpoints: changes reach the database, the running engine and the devices.

The interval tests use the real SDK (``device_client.Device``): the change must arrive on
its retained config topic and show up in the ``interval`` of its next heartbeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from device_client import Device
from tests.harness.api import FakeDevice, RunningMonitor, wait_for
from tests.harness.monitor import read_devices
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.anyio
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def sdk_device(broker: TestBroker, device_id: str) -> AsyncIterator[Device]:
    broker.add_device(device_id)
    device = Device(device_id=device_id, broker=broker.url(device_id), interval=0.5, keepalive=5)
    await asyncio.to_thread(device.start)
    yield device
    await asyncio.to_thread(device.stop)


async def _device(client: httpx.AsyncClient, device_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/api/devices/{device_id}")
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


async def _stored(monitor_api: RunningMonitor, device_id: str) -> None:
    async with monitor_api.reader() as reader:

        async def listed() -> bool:
            body = (await reader.get("/api/devices", params={"q": device_id})).json()
            return any(item["id"] == device_id for item in body["items"])

        await wait_for(listed, what=f"{device_id} stored")


async def test_an_interval_set_through_the_api_reaches_the_running_sdk_device(
    monitor_api: RunningMonitor, sdk_device: Device, device_id: str
) -> None:
    await _stored(monitor_api, device_id)
    async with monitor_api.admin() as admin:
        response = await admin.patch(f"/api/devices/{device_id}", json={"interval": 0.3})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["interval_override"] == 0.3
        # Applied to the running engine before the response: no poll delay.
        assert body["interval"] == 0.3

        # The config topic is retained and pushed at once; the device applies it and
        # announces it in its next heartbeats.
        await wait_for(lambda: sdk_device.interval == 0.3, timeout=5, what="SDK got 0.3 s")

        async def announced(value: float) -> bool:
            current = await _device(admin, device_id)
            return current is not None and current["announced_interval"] == value

        await wait_for(lambda: announced(0.3), timeout=5, what="heartbeats carry 0.3 s")

        # A class interval is pushed to devices of the class that have no override.
        put = await admin.put("/api/classes/fast", json={"interval": 0.4, "grace": 1})
        assert put.status_code == 200, put.text
        moved = await admin.patch(
            f"/api/devices/{device_id}", json={"interval": None, "class": "fast"}
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["interval_override"] is None
        assert moved.json()["class"] == "fast"
        await wait_for(lambda: sdk_device.interval == 0.4, timeout=5, what="class interval")
        await wait_for(lambda: announced(0.4), timeout=5, what="heartbeats carry 0.4 s")

        # Changing the class's interval reaches its devices too.
        patched = await admin.patch("/api/classes/fast", json={"interval": 0.6})
        assert patched.status_code == 200, patched.text
        assert patched.json()["interval"] == 0.6
        assert patched.json()["grace"] == 1.0  # untouched fields keep their values
        await wait_for(lambda: sdk_device.interval == 0.6, timeout=5, what="class change")
        await wait_for(lambda: announced(0.6), timeout=5, what="heartbeats carry 0.6 s")

    # What a restart (or another replica) would load: the database agrees.
    stored = await asyncio.to_thread(read_devices, monitor_api.database_url)
    assert stored[device_id].interval_override is None


async def test_maintenance_tags_and_class_through_the_api(
    monitor_api: RunningMonitor, broker: TestBroker
) -> None:
    device = FakeDevice(broker, "pump-1")
    try:
        await device.beat(interval=30)
        await _stored(monitor_api, "pump-1")
        async with monitor_api.admin() as admin:
            on = await admin.patch("/api/devices/pump-1", json={"maintenance": True})
            assert on.status_code == 200, on.text
            assert (on.json()["state"], on.json()["maintenance"]) == ("maintenance", True)
            off = await admin.patch("/api/devices/pump-1", json={"maintenance": False})
            assert (off.json()["state"], off.json()["maintenance"]) == ("online", False)
            tagged = await admin.patch(
                "/api/devices/pump-1", json={"tags": ["b", "a", "b", "site:north"]}
            )
            assert tagged.json()["tags"] == ["a", "b", "site:north"]
            untouched = await admin.patch("/api/devices/pump-1", json={})
            assert untouched.status_code == 200
            assert untouched.json()["tags"] == ["a", "b", "site:north"]

            async with monitor_api.reader() as reader:
                timeline = (await reader.get("/api/devices/pump-1/transitions")).json()
            assert [t["new_state"] for t in timeline["items"]][:2] == ["online", "maintenance"]
    finally:
        device.close()


@SQLITE_ONLY
async def test_class_lifecycle(monitor_api: RunningMonitor, broker: TestBroker) -> None:
    async with monitor_api.admin() as admin:
        created = await admin.put(
            "/api/classes/critical",
            json={"interval": 10, "grace": 5, "missed_limit": 2, "lost_after": None,
                  "description": "pumps"},
        )  # fmt: skip
        assert created.status_code == 200, created.text
        assert created.json() == {
            "name": "critical",
            "interval": 10.0,
            "grace": 5.0,
            "missed_limit": 2,
            "lost_after": None,
            "description": "pumps",
            "devices": 0,
        }
        replaced = await admin.put("/api/classes/critical", json={"grace": 3})
        assert replaced.json()["interval"] is None  # PUT replaces: defaults for the rest
        assert replaced.json()["lost_after"] == 86_400.0

        device = FakeDevice(broker, "pump-2")
        try:
            await device.beat(interval=30)
            await _stored(monitor_api, "pump-2")
            moved = await admin.patch("/api/devices/pump-2", json={"class": "critical"})
            assert moved.status_code == 200, moved.text
            in_use = await admin.delete("/api/classes/critical")
            assert in_use.status_code == 409
            assert "still has 1 device" in in_use.json()["detail"]
            await admin.patch("/api/devices/pump-2", json={"class": "default"})
        finally:
            device.close()
        deleted = await admin.delete("/api/classes/critical")
        assert deleted.status_code == 204
        assert (await admin.delete("/api/classes/critical")).status_code == 404
        assert (await admin.delete("/api/classes/default")).status_code == 409
        assert (await admin.patch("/api/classes/nothing", json={"grace": 1})).status_code == 404


@SQLITE_ONLY
async def test_bad_changes_are_clear_4xx_and_change_nothing(
    monitor_api: RunningMonitor, broker: TestBroker
) -> None:
    device = FakeDevice(broker, "pump-3")
    try:
        await device.beat(interval=30)
        await _stored(monitor_api, "pump-3")
    finally:
        device.close()
    cases: list[tuple[str, str, Any, int, str]] = [
        ("PATCH", "/api/devices/pump-3", {"interval": 0}, 422, "body.interval"),
        ("PATCH", "/api/devices/pump-3", {"interval": 86_401}, 422, "body.interval"),
        ("PATCH", "/api/devices/pump-3", {"interval": "soon"}, 422, "body.interval"),
        ("PATCH", "/api/devices/pump-3", {"intervall": 5}, 422, "body.intervall"),
        ("PATCH", "/api/devices/pump-3", {"tags": ["no spaces"]}, 422, "body.tags.0"),
        ("PATCH", "/api/devices/pump-3", {"tags": ["t"] * 33}, 422, "body.tags"),
        ("PATCH", "/api/devices/pump-3", {"maintenance": "sometimes"}, 422, "body"),
        ("PATCH", "/api/devices/pump-3", {"class": "ghosts"}, 422, "no device class 'ghosts'"),
        ("PATCH", "/api/devices/pump-3", [1, 2], 422, "body"),
        ("PATCH", "/api/devices/ghost", {"interval": 5}, 404, "no device 'ghost'"),
        ("PUT", "/api/classes/fast", {"grace": -1}, 422, "body.grace"),
        ("PUT", "/api/classes/fast", {"missed_limit": 0}, 422, "body.missed_limit"),
        ("PUT", "/api/classes/fast", {"lost_after": 0}, 422, "body.lost_after"),
        ("PUT", "/api/classes/bad%20name", {}, 422, "path.name"),
        ("PATCH", "/api/classes/default", {"grace": None}, 422, "grace cannot be null"),
        ("PATCH", "/api/devices/pump-3", {"class": None}, 422, "class cannot be null"),
    ]
    async with monitor_api.admin() as admin:
        for method, path, body, status, mentions in cases:
            response = await admin.request(method, path, json=body)
            assert response.status_code == status, (method, path, body, response.text)
            assert mentions in response.text, (method, path, body, response.text)
        # Invalid JSON is a 422 too, never a 500.
        broken = await admin.patch(
            "/api/devices/pump-3",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 422
        after = (await admin.get("/api/devices/pump-3")).json()
    assert after["interval_override"] is None
    assert after["class"] == "default"
    assert after["tags"] == []

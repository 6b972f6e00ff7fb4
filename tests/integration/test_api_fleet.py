"""Endpoints that keep dashboards current (/api/live, /api/transitions); dot ids in paths."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.harness.api import FakeDevice, RunningMonitor, wait_for
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.anyio


async def test_live_follows_every_heartbeat_and_transitions_list_the_fleet(
    broker: TestBroker, monitor_api: RunningMonitor
) -> None:
    pump, fan = FakeDevice(broker, "pump-1"), FakeDevice(broker, "fan-1")
    try:
        async with monitor_api.reader() as reader:
            await pump.beat(interval=60)
            await fan.beat(interval=60)

            async def live(*ids: str) -> dict[str, dict[str, object]]:
                response = await reader.get("/api/live", params=[("id", i) for i in ids])
                assert response.status_code == 200, response.text
                body = response.json()
                datetime.fromisoformat(body["at"])
                return {item["id"]: item for item in body["items"]}

            async def tracked() -> bool:
                return len(await live("pump-1", "fan-1")) == 2

            await wait_for(tracked, what="both tracked")
            first = (await live("pump-1"))["pump-1"]
            assert first["state"] == "online"
            # Another beat, no transition: live has it at once.
            await pump.beat(interval=60)

            async def newer() -> bool:
                item = (await live("pump-1"))["pump-1"]
                return item["last_seq"] == 1 and item["last_seen"] != first["last_seen"]

            await wait_for(newer, what="the second beat in /api/live")
            # Unknown ids are left out; repeated ones answered once, in the order asked.
            assert list(await live("nobody", "fan-1", "pump-1", "fan-1")) == ["fan-1", "pump-1"]
            too_many = "&".join(f"id=d{i}" for i in range(201))
            for bad in ("", "id=a/b", too_many):
                assert (await reader.get(f"/api/live?{bad}")).status_code == 422, bad

            async def both_transitions() -> list[dict[str, object]] | None:
                response = await reader.get("/api/transitions", params={"limit": 10})
                assert response.status_code == 200, response.text
                items: list[dict[str, object]] = response.json()
                return items if {i["device"] for i in items} == {"pump-1", "fan-1"} else None

            items = await wait_for(both_transitions, what="both first transitions stored")
            assert all(i["new_state"] == "online" and i["old_state"] is None for i in items)
            ats = [str(i["at"]) for i in items]
            assert ats == sorted(ats, reverse=True), "not newest first"
            one = (await reader.get("/api/transitions", params={"limit": 1})).json()
            assert len(one) == 1
    finally:
        pump.close()
        fan.close()


async def test_dot_ids_are_reached_with_a_leading_tilde(
    broker: TestBroker, monitor_api: RunningMonitor
) -> None:
    # httpx, like browsers, removes "." and ".." segments: /api/devices/.. is /api.
    dot, dots = FakeDevice(broker, "."), FakeDevice(broker, "..")
    try:
        await dot.beat(interval=60)
        await dots.beat(interval=60)
        async with monitor_api.admin() as admin:

            async def tracked() -> bool:
                found = (await admin.get("/api/live", params=[("id", "."), ("id", "..")])).json()
                return len(found["items"]) == 2

            await wait_for(tracked, what="both dot devices tracked")

            async def stored() -> bool:
                # A change needs the device's row, written one flush window after it is seen.
                rows = [(await admin.get(f"/api/devices/~{d}")).json() for d in (".", "..")]
                return all(row.get("first_seen") for row in rows)

            await wait_for(stored, what="both dot devices stored")
            for device in (".", ".."):
                got = await admin.get(f"/api/devices/~{device}")
                assert got.status_code == 200, got.text
                assert got.json()["id"] == device
                path = f"/api/devices/~{device}"
                assert (await admin.get(path + "/transitions")).json()["total"] >= 1
                patched = await admin.patch(path, json={"tags": ["dots"]})
                assert patched.status_code == 200, patched.text
                assert patched.json()["id"] == device
            # Any id may carry the tilde; it is never part of one.
            assert (await admin.get("/api/devices/~nobody")).status_code == 404
            assert (await admin.get("/api/devices/~~x")).status_code == 422
            pumps = await admin.get("/api/devices", params={"tag": "dots"})
            assert sorted(d["id"] for d in pumps.json()["items"]) == [".", ".."]
    finally:
        dot.close()
        dots.close()

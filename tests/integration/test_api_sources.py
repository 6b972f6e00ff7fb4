"""/api/sources: stored sources created, replaced, listed and deleted; bad ones refused."""

from __future__ import annotations

import pytest

from tests.harness.api import RunningMonitor

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


async def test_sources_through_the_api(monitor_api: RunningMonitor) -> None:
    body = {"kind": "tasmota", "options": {"interval": 300, "prefix": "tele"}}
    async with monitor_api.admin() as admin:
        created = await admin.put("/api/sources/plugs", json=body)
        assert created.status_code == 200, created.text
        assert created.json() == {
            "name": "plugs",
            "kind": "tasmota",
            "options": {"interval": 300, "prefix": "tele"},
            "stored": True,
            "active": True,  # this monitor watches it before answering
            "counts": {},
        }
        bad = await admin.put(
            "/api/sources/plugs", json={"kind": "tasmota", "options": {"colour": "red"}}
        )
        assert bad.status_code == 422
        assert bad.json()["detail"] == "source 'plugs': unknown key 'colour' for kind 'tasmota'"
        bad = await admin.put("/api/sources/x", json={"kind": "lora"})
        assert bad.status_code == 422
        replaced = await admin.put(
            "/api/sources/plugs", json={"kind": "esphome", "options": {"beats": False}}
        )
        assert replaced.json()["kind"] == "esphome"
    async with monitor_api.reader() as reader:
        listed = (await reader.get("/api/sources")).json()
        assert [(s["name"], s["kind"], s["options"]) for s in listed] == [
            ("plugs", "esphome", {"beats": False})
        ]
        refused = await reader.put("/api/sources/other", json=body)
        assert refused.status_code == 403
    async with monitor_api.admin() as admin:
        assert (await admin.delete("/api/sources/plugs")).status_code == 204
        assert (await admin.delete("/api/sources/plugs")).status_code == 404
        assert (await admin.get("/api/sources")).json() == []

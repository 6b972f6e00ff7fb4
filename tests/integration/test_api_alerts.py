"""Alerting through the API: alerts and acknowledgement, channels, rules, mutes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.api import FakeDevice, running_monitor, wait_for
from tests.harness.mosquitto import TestBroker

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def test_alerts_channels_rules_and_mutes(broker: TestBroker, database_url: str) -> None:
    # Alerts are held storm_window seconds (to group a mass outage); keep that short.
    async with running_monitor(broker, database_url, storm_window=0.3) as monitor:
        async with monitor.admin() as admin, monitor.reader() as reader:
            # Channels: an apprise URL, stored as given, shown redacted.
            channel = await admin.put(
                "/api/channels/ops",
                json={"url": "json://user:s3cret@127.0.0.1:9/hook", "description": "ops"},
            )
            assert channel.status_code == 200, channel.text
            assert channel.json()["scheme"] == "json"
            assert "s3cret" not in channel.text
            listed = (await reader.get("/api/channels")).json()
            assert [c["name"] for c in listed] == ["ops"]
            assert "s3cret" not in str(listed)
            bad = await admin.put("/api/channels/bad", json={"url": "nonsense"})
            assert bad.status_code == 422
            assert bad.json()["errors"][0]["location"] == "body.url"
            unknown = await admin.put("/api/channels/bad", json={"url": "zzzz://host/x"})
            assert unknown.status_code == 422
            assert "channel 'bad'" in unknown.json()["detail"]
            # Nothing listens on port 9: the test notification fails, and says so.
            tried = await admin.post("/api/channels/ops/test")
            assert tried.status_code == 502, tried.text
            assert (await admin.post("/api/channels/nope/test")).status_code == 404

            # Rules route alerts to channels.
            rule = await admin.put(
                "/api/rules/pumps",
                json={"channels": ["ops"], "classes": ["default"], "min_severity": "warning"},
            )
            assert rule.status_code == 200, rule.text
            assert rule.json()["min_severity"] == "warning"
            assert [r["name"] for r in (await reader.get("/api/rules")).json()] == ["pumps"]
            invalid = await admin.put("/api/rules/x", json={"channels": []})
            assert invalid.status_code == 422

            # A device goes stale: an alert opens; an operator acknowledges it.
            device = FakeDevice(broker, "pump-5")
            try:
                await device.beat(interval=0.2)

                async def open_alert() -> dict[str, Any] | None:
                    found = (await reader.get("/api/alerts", params={"status": "open"})).json()
                    mine = [a for a in found if a["device_id"] == "pump-5"]
                    return mine[0] if mine else None

                alert = await wait_for(open_alert, timeout=15, what="an open alert for pump-5")
            finally:
                device.close()
            assert alert["state"] == "stale"
            assert (await reader.get(f"/api/alerts/{alert['id']}")).json()["id"] == alert["id"]
            acked = await admin.post(f"/api/alerts/{alert['id']}/acknowledge")
            assert acked.status_code == 200, acked.text
            assert acked.json()["acknowledged_by"] == "api:admin"
            again = await admin.post(f"/api/alerts/{alert['id']}/acknowledge")
            assert again.status_code == 409
            assert (await admin.post("/api/alerts/999999/acknowledge")).status_code == 404
            assert (await reader.get("/api/alerts/999999")).status_code == 404
            forbidden = await reader.post(f"/api/alerts/{alert['id']}/acknowledge")
            assert forbidden.status_code == 403

            # Mutes silence a device's alerts for a while.
            mute = await admin.post("/api/devices/pump-5/mute", json={"minutes": 30, "note": "x"})
            assert mute.status_code == 201, mute.text
            assert mute.json()["devices"] == ["pump-5"]
            mutes = (await reader.get("/api/mutes")).json()
            assert [m["id"] for m in mutes] == [mute.json()["id"]]
            assert (await admin.delete(f"/api/mutes/{mute.json()['id']}")).status_code == 204
            assert (await reader.get("/api/mutes")).json() == []
            assert (await admin.delete("/api/mutes/999999")).status_code == 404
            too_long = await admin.post("/api/devices/pump-5/mute", json={"minutes": 0})
            assert too_long.status_code == 422

            assert (await admin.delete("/api/rules/pumps")).status_code == 204
            assert (await admin.delete("/api/rules/pumps")).status_code == 404
            assert (await admin.delete("/api/channels/ops")).status_code == 204
            assert (await admin.delete("/api/channels/ops")).status_code == 404

        async with monitor.client() as anonymous:
            text = (await anonymous.get("/metrics")).text
        assert "clawbeat_alerts_opened_total 1.0" in text
        assert "clawbeat_notifications_failed_total" in text


async def test_deliveries_list_states_with_secrets_masked(
    broker: TestBroker, database_url: str
) -> None:
    # A Telegram-style channel whose error quotes the URL path holding its bot token.
    async with (
        running_monitor(
            broker,
            database_url,
            storm_window=0.3,
            alert_poll_interval=0.2,
            alert_retry_base=0.2,
            alert_retry_cap=0.5,
            alert_max_attempts=2,
        ) as monitor,
        monitor.admin() as admin,
        monitor.reader() as reader,
    ):
        url = "json://bot:hunter22-token@127.0.0.1:9/bot1234:hunter22-token/send"
        put = await admin.put("/api/channels/dead", json={"url": url})
        assert put.status_code == 200, put.text
        device = FakeDevice(broker, "pump-6")
        try:
            await device.beat(interval=0.2)

            async def given_up() -> list[dict[str, Any]] | None:
                response = await reader.get("/api/deliveries", params={"state": "failed"})
                assert response.status_code == 200, response.text
                rows: list[dict[str, Any]] = response.json()
                return rows or None

            (row,) = await wait_for(given_up, 30, what="the delivery to give up")
        finally:
            device.close()
        assert row["channel"] == "dead"
        assert row["event"] == "down"
        assert row["attempts"] == 2
        assert row["sent_at"] is None
        assert row["last_error"]
        everything = (await reader.get("/api/deliveries")).text
        assert "hunter22" not in everything
        assert (await reader.get("/api/deliveries", params={"state": "sent"})).json() == []
        assert (await reader.get("/api/deliveries", params={"state": "x"})).status_code == 422
        # The channel removed, its secrets cannot be masked: the error is not shown.
        assert (await admin.delete("/api/channels/dead")).status_code == 204
        (after,) = (await reader.get("/api/deliveries")).json()
        assert "not shown" in after["last_error"]

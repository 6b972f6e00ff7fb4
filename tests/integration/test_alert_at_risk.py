"""At-risk alerts end to end: a real broker, database, scorer and webhook server.

A device that keeps reconnecting with a nearly empty battery is flagged by the risk
scorer. Without an ``at-risk`` rule nobody hears of it (a state rule routing even
warnings does not carry it); once a rule asks for it, exactly one notification goes to
the rule's channel however many passes keep flagging it. When the device then stops
beating, its at-risk alert resolves silently and the ordinary state alert takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.harness.alert_sinks import Hook, WebhookSink
from tests.harness.api import FakeDevice, RunningMonitor, running_monitor, wait_for
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.anyio

CYCLE = 0.3  # risk scoring pass
POLL = 0.2  # alert configuration poll
STORM_WINDOW = 0.5
INTERVAL = 2.0  # the degrading device's declared interval; it beats twice as often
PASSES = 6  # passes watched for a repeat that must not come


def at_risk_post(hook: Hook) -> bool:
    return "at risk" in hook.title


@pytest.fixture
def hooks() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def monitor(broker: TestBroker, database_url: str) -> AsyncIterator[RunningMonitor]:
    async with running_monitor(
        broker,
        database_url,
        risk_cycle=CYCLE,
        alert_poll_interval=POLL,
        storm_window=STORM_WINDOW,
        alert_retry_base=0.3,
        alert_retry_cap=1,
        repeat_every=0,
        escalate_after=0,
    ) as running:
        yield running


@pytest.fixture
def devices(broker: TestBroker) -> Iterator[tuple[FakeDevice, FakeDevice]]:
    failing = FakeDevice(broker, "pump-7")
    steady = FakeDevice(broker, "pump-8")
    yield failing, steady
    failing.close()
    steady.close()


async def passes(monitor: RunningMonitor, count: int) -> None:
    """Wait until ``count`` more scoring passes ran (and the tick loop saw the last)."""
    risk = monitor.service.risk
    target = risk.cycles + count
    await wait_for(lambda: risk.cycles >= target, timeout=count * CYCLE * 10 + 10, what="passes")
    await asyncio.sleep(0.5)  # a tick (0.2 s) to judge it, the outbox to send it


async def test_a_degrading_device_gives_one_at_risk_notification_only_where_a_rule_asks(
    monitor: RunningMonitor, devices: tuple[FakeDevice, FakeDevice], hooks: WebhookSink
) -> None:
    failing, steady = devices
    async with monitor.admin() as admin, monitor.reader() as reader:
        for name in ("ops", "risk"):
            put = await admin.put(f"/api/channels/{name}", json={"url": hooks.url(f"/{name}")})
            assert put.status_code == 200, put.text
        # A state rule taking every warning: it must not carry at-risk alerts.
        rule = await admin.put(
            "/api/rules/ops", json={"channels": ["ops"], "min_severity": "warning"}
        )
        assert rule.status_code == 200, rule.text
        assert rule.json()["kind"] == "state"

        await steady.beat(interval=60, uptime=5000, metrics={"battery_pct": 91})
        await failing.beat(interval=INTERVAL, uptime=4000, metrics={"battery_pct": 3})
        for k in range(8):  # eight reconnects: a new session each time
            failing.session = f"s{k + 2}"
            failing.seq = 0
            await failing.beat(interval=INTERVAL, uptime=4001 + k, metrics={"battery_pct": 3})

        async def keep_beating() -> None:
            uptime = 4010
            while True:
                await asyncio.sleep(INTERVAL / 2)
                uptime += 1
                await failing.beat(interval=INTERVAL, uptime=uptime, metrics={"battery_pct": 3})

        beating = asyncio.create_task(keep_beating())
        try:

            async def flagged() -> bool:
                body: dict[str, Any] = (await reader.get("/api/devices/pump-7")).json()
                risk = body.get("risk")  # absent (404) until the device is known
                return risk is not None and risk["level"] != "low"

            await wait_for(flagged, timeout=20 * CYCLE + 10, what="pump-7 flagged")
            await passes(monitor, PASSES)
            assert hooks.matching(at_risk_post) == [], "at-risk alerts are opt-in"
            alerts = (await reader.get("/api/alerts")).json()
            assert all(a["kind"] != "at-risk" for a in alerts), alerts

            asked = await admin.put(
                "/api/rules/risky",
                json={"channels": ["risk"], "kind": "at-risk", "min_risk": "elevated"},
            )
            assert asked.status_code == 200, asked.text
            assert asked.json()["min_risk"] == "elevated"

            (post,) = await asyncio.to_thread(
                hooks.wait, at_risk_post, timeout=POLL * 10 + CYCLE * 10 + 10
            )
            assert post.path == "/risk"
            assert post.title.startswith("[clawbeat] pump-7 is at risk")
            assert "battery 3 %" in post.title, post.title
            assert post.type == "warning"
            await passes(monitor, PASSES)
            assert [h.path for h in hooks.matching(at_risk_post)] == ["/risk"]

            alerts = (await reader.get("/api/alerts")).json()
            risky = [a for a in alerts if a["kind"] == "at-risk"]
            assert [(a["device_id"], a["status"], a["severity"]) for a in risky] == [
                ("pump-7", "open", "warning")
            ]
            assert "battery 3 %" in risky[0]["reason"]
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

        # It stops beating: the state alert takes over, the at-risk one ends silently.
        await asyncio.to_thread(
            hooks.wait,
            lambda h: h.path == "/ops" and h.title == "[clawbeat] pump-7 is stale",
            timeout=INTERVAL * 10 + STORM_WINDOW + 10,
        )

        async def at_risk_resolved() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = (await reader.get("/api/alerts")).json()
            return [a for a in items if a["kind"] == "at-risk" and a["status"] == "resolved"]

        (resolved,) = await wait_for(at_risk_resolved, what="at-risk alert resolved")
        assert resolved["device_id"] == "pump-7"
        await passes(monitor, 3)
        assert [h.title for h in hooks.matching(lambda h: h.path == "/risk")] == [post.title]
        assert all("pump-8" not in h.title for h in hooks.posts)

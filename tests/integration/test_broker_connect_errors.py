"""A monitor that cannot reach its broker keeps trying and says what is wrong, and where.

Wrong password, closed port, unknown host, a broker that never answers: each is logged
as what it is (never as a "lost" connection that never existed), repeated while it
lasts, and shown in ``/health/ready`` and ``clawbeat_broker_connect_failures_total``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.runner import free_port
from monitor.process import MonitorProcess
from monitor.settings import MonitorSettings
from tests.harness.api import FAST, wait_for
from tests.harness.mosquitto import TestBroker
from tests.harness.tcp_proxy import TcpProxy

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@asynccontextmanager
async def unconnected_monitor(database_url: str, mqtt_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = MonitorSettings(
        mqtt_url=mqtt_url,
        database_url=database_url,
        http_bind="127.0.0.1:0",
        mqtt_report_every=1,
        **FAST,
    )
    process = await MonitorProcess.open(settings)
    service, http = process.service, process.http
    assert http is not None
    task = asyncio.create_task(process.run(), name="monitor")
    try:
        await wait_for(lambda: task.done() or http.bound, what="HTTP server")
        assert http.bound, task.result()
        async with httpx.AsyncClient(base_url=http.url) as client:
            yield client
    finally:
        service.request_stop()
        async with asyncio.timeout(20):
            assert await task == 0


async def _failures(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "clawbeat_broker_connect_failures_total"
    }


@pytest.fixture
def blackhole(broker: TestBroker) -> Iterator[TcpProxy]:
    """A path to the broker that carries nothing: connects, then silence."""
    proxy = TcpProxy(broker.host, broker.port)
    proxy.blackhole()
    yield proxy
    proxy.close()


def _cases(broker: TestBroker, blackhole: TcpProxy) -> dict[str, tuple[str, str, str]]:
    closed = free_port()
    return {
        "silent-broker": (
            f"mqtt://monitor:pw@127.0.0.1:{blackhole.port}",
            "timeout",
            "no answer from the broker in time",
        ),
        # case: (URL, reason label, what the message says)
        "wrong-password": (
            broker.url(broker.monitor_user, "not-the-password"),
            "auth",
            "the broker refused the login",
        ),
        "closed-port": (f"mqtt://monitor:pw@127.0.0.1:{closed}", "refused", "connection refused"),
        "unknown-host": (
            "mqtt://monitor:pw@no-such-broker.invalid:1883",
            "dns",
            "does not resolve",
        ),
    }


@pytest.mark.parametrize("case", ["wrong-password", "closed-port", "unknown-host", "silent-broker"])
async def test_connect_failures_are_named_repeated_and_exposed(
    broker: TestBroker,
    blackhole: TcpProxy,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    url, reason, says = _cases(broker, blackhole)[case]
    where = url.split("@", 1)[1]
    caplog.set_level(logging.DEBUG, logger="clawbeat.mqtt")

    def reports() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "clawbeat.mqtt" and r.levelno >= logging.WARNING
        ]

    async with unconnected_monitor(database_url, url) as client:
        # Repeated while it lasts: at least two reports, each naming the broker and why.
        # A silent broker costs each attempt the 10 s CONNACK timeout.
        await wait_for(lambda: len(reports()) >= 2, timeout=60, what="two reports")
        for line in reports():
            assert line.startswith(f"cannot connect to broker mqtt://monitor@{where}: ")
            assert says in line
            assert "never connected" in line
            assert "pw" not in line.split("@")[0]  # the password stays out of the log
        assert not [m for m in reports() if "lost" in m]

        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        detail = ready.json()["checks"]["broker"]["detail"]
        assert f"cannot connect to mqtt://monitor@{where}" in detail
        assert says in detail

        # It keeps trying: the counter for this reason goes on growing.
        first = (await _failures(client))[reason]
        assert first >= 2

        async def more() -> bool:
            return (await _failures(client))[reason] > first

        await wait_for(more, timeout=60, what="another attempt")
        others = {k: v for k, v in (await _failures(client)).items() if k != reason}
        assert set(others.values()) == {0}

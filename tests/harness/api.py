"""A real monitor running in the test's event loop, with its HTTP API on a free port.

The service is the production :class:`MonitorService` (broker, database, engine, writer,
uvicorn); tests talk to it over real HTTP with httpx, with tokens made through the same
repository functions ``clawbeat token create`` uses.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from monitor.process import MonitorProcess
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.store import tokens
from monitor.store.tokens import TokenScope
from monitor.web.server import HttpServer
from tests.harness.db_fixtures import open_store
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

# Short timings keep tests fast: a device beating every 0.5 s is late after 1.5 s of
# silence and stale after 2 s.
FAST: dict[str, Any] = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 0.5,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "rollup_interval": 0.2,
    "summary_interval": 1,
    "mqtt_keepalive": 5,
}


async def make_token(database_url: str, scope: TokenScope, name: str = "test") -> str:
    async with open_store(database_url) as sessions, sessions() as session:
        _, token = await tokens.create_token(session, name=name, scope=scope, now=datetime.now(UTC))
        await session.commit()
    return token


@dataclass
class RunningMonitor:
    service: MonitorService
    http: HttpServer
    task: asyncio.Task[int]
    base_url: str
    read_token: str
    admin_token: str
    database_url: str
    verify: ssl.SSLContext | bool = True

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs.setdefault("timeout", 10)
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, verify=self.verify, **kwargs
        )

    def reader(self) -> httpx.AsyncClient:
        return self.client(self.read_token)

    def admin(self) -> httpx.AsyncClient:
        return self.client(self.admin_token)


async def wait_for(
    condition: Any,
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    *,
    every: float = 0.05,
    what: str = "",
) -> Any:
    """Await ``condition()`` (sync or async) until truthy; return the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(every)


@asynccontextmanager
async def running_monitor(
    broker: TestBroker, database_url: str, **overrides: Any
) -> AsyncIterator[RunningMonitor]:
    settings = MonitorSettings(
        mqtt_url=broker.url(),
        database_url=database_url,
        http_bind="127.0.0.1:0",
        **{**FAST, **overrides},
    )
    read_token = await make_token(database_url, TokenScope.READ, "reader")
    admin_token = await make_token(database_url, TokenScope.ADMIN, "admin")
    process = await MonitorProcess.open(settings)
    service, http = process.service, process.http
    assert http is not None
    task = asyncio.create_task(process.run(), name="monitor")
    try:
        await wait_for(lambda: task.done() or http.bound, what="HTTP server")
        if task.done():
            task.result()  # raises what stopped it
            raise AssertionError("the monitor exited at start")
        await wait_for(
            lambda: task.done() or (service.link is not None and service.link.connected),
            what="broker connection",
        )
        verify: ssl.SSLContext | bool = True
        if settings.http_tls_cert is not None:
            # HTTPS here uses the broker's dev certificates: one CA for both.
            verify = ssl.create_default_context(cafile=str(broker.ca_file))
        yield RunningMonitor(
            service=service,
            http=http,
            task=task,
            base_url=http.url,
            read_token=read_token,
            admin_token=admin_token,
            database_url=database_url,
            verify=verify,
        )
    finally:
        service.request_stop()
        try:
            async with asyncio.timeout(20):
                code = await task
        except TimeoutError:
            task.cancel()
            raise
        assert code == 0, f"monitor exited with {code}"


@pytest.fixture
async def monitor_api(broker: TestBroker, database_url: str) -> AsyncIterator[RunningMonitor]:
    """The production monitor with its API on a free port, plus a read and an admin token."""
    async with running_monitor(broker, database_url) as running:
        yield running


class FakeDevice:
    """A device publishing heartbeats by hand (paho), so a test decides every beat."""

    def __init__(self, broker: TestBroker, device_id: str, session: str = "s1") -> None:
        broker.add_device(device_id)
        self.device_id = device_id
        self.session = session
        self.seq = 0
        self.topic = f"clawbeat/v1/devices/{device_id}/heartbeat"
        self.probe = MqttProbe(broker.url(device_id), client_id=device_id)
        self.probe.connect()

    async def beat(self, *, interval: float = 60.0, **extra: Any) -> None:
        payload = {
            "seq": self.seq,
            "session": self.session,
            "interval": interval,
            "ts": time.time(),
            **extra,
        }
        self.seq += 1
        await asyncio.to_thread(self.probe.publish, self.topic, json.dumps(payload), retain=True)

    def close(self) -> None:
        self.probe.close()

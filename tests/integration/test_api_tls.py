"""Serving the API over HTTPS, and refusing to start on a bad HTTP configuration."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from monitor.errors import ConfigError
from monitor.process import MonitorProcess
from monitor.settings import MonitorSettings
from tests.harness.api import running_monitor
from tests.harness.mosquitto import TestBroker

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


async def test_https_with_the_dev_certificates(broker: TestBroker, database_url: str) -> None:
    certs = broker.process.certs  # CA + server certificate for 127.0.0.1 (broker/certs.py)
    async with running_monitor(
        broker,
        database_url,
        http_tls_cert=certs.server_cert,
        http_tls_key=certs.server_key,
    ) as monitor:
        assert monitor.base_url.startswith("https://127.0.0.1:")
        async with monitor.reader() as client:  # verifies against the dev CA
            assert (await client.get("/api/me")).json()["scope"] == "read"
            assert (await client.get("/health/ready")).status_code == 200
        # Without the CA the certificate is not trusted...
        async with httpx.AsyncClient(base_url=monitor.base_url) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get("/health/live")
        # ...and plain HTTP gets no answer it could mistake for the API.
        plain = monitor.base_url.replace("https://", "http://")
        async with httpx.AsyncClient(base_url=plain) as cleartext:
            try:
                answer: httpx.Response | None = await cleartext.get("/health/live")
            except httpx.HTTPError:
                answer = None
            assert answer is None or answer.status_code == 400


def test_a_certificate_without_its_key_is_refused(database_url: str) -> None:
    with pytest.raises(ValidationError, match="must be given together"):
        MonitorSettings(database_url=database_url, http_tls_cert=Path("/etc/hostname"))


async def _start_fails(settings: MonitorSettings) -> ConfigError:
    async def start() -> None:
        process = await MonitorProcess.open(settings)  # a bad bind address fails here
        try:
            await process.run()  # a taken port or bad TLS material here
        finally:
            await process.service.db.dispose()

    with pytest.raises(ConfigError) as failed:
        await start()
    return failed.value


async def test_an_unreadable_certificate_stops_the_start(
    broker: TestBroker, database_url: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem"
    error = await _start_fails(
        MonitorSettings(
            mqtt_url=broker.url(),
            database_url=database_url,
            http_bind="127.0.0.1:0",
            http_tls_cert=missing,
            http_tls_key=missing,
        )
    )
    assert "CLAWBEAT_HTTP_TLS_CERT" in str(error)
    assert str(missing) in str(error)


async def test_a_port_in_use_or_a_bad_address_stops_the_start(
    broker: TestBroker, database_url: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = await _start_fails(
            MonitorSettings(
                mqtt_url=broker.url(), database_url=database_url, http_bind=f"127.0.0.1:{port}"
            )
        )
        assert f"127.0.0.1:{port}" in str(error)
        assert "CLAWBEAT_HTTP_BIND" in str(error)
    for bad in ("localhost", "127.0.0.1:http", "127.0.0.1:70000"):
        error = await _start_fails(
            MonitorSettings(mqtt_url=broker.url(), database_url=database_url, http_bind=bad)
        )
        assert "HOST:PORT" in str(error)


def test_the_cli_names_the_problem(broker: TestBroker, database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "monitor", "--http-bind", f"127.0.0.1:{port}"],
            env={
                **os.environ,
                "CLAWBEAT_MQTT_URL": broker.url(),
                "CLAWBEAT_DATABASE_URL": database_url,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in result.stderr


async def test_an_empty_bind_runs_without_http(broker: TestBroker, database_url: str) -> None:
    process = await MonitorProcess.open(
        MonitorSettings(mqtt_url=broker.url(), database_url=database_url, http_bind="")
    )
    service = process.service
    task = asyncio.create_task(process.run())
    try:
        for _ in range(100):
            if service.link is not None and service.link.connected:
                break
            await asyncio.sleep(0.05)
        assert service.link is not None
        assert service.link.connected
        assert process.http is None
    finally:
        service.request_stop()
        assert await task == 0

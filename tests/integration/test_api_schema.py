"""The OpenAPI document is complete and the API keeps to it (schemathesis).

schemathesis generates requests from the document (valid and invalid ones) against the
real monitor process with a real broker and database, and checks every response: no
5xx, status codes and bodies as documented. Bounded: a few examples per operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.result import Ok

from monitor.parts import open_monitor
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.store import migrate
from monitor.store.tokens import TokenScope
from monitor.web.app import create_app
from tests.harness.api import FAST, make_token
from tests.harness.monitor import MonitorProcess, StatusWatch, wait_until
from tests.harness.mosquitto import TestBroker, check_mosquitto_installed
from tests.harness.postgres import run_coroutine
from tests.mqtt_helpers import MqttProbe

_LISTENING = re.compile(r"HTTP API and dashboard on (http://\S+?)/?$", re.MULTILINE)


@dataclass(frozen=True)
class Live:
    base_url: str
    token: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    missing = check_mosquitto_installed()
    if missing:
        pytest.fail(missing, pytrace=False)
    tmp = tmp_path_factory.mktemp("schema")
    broker = TestBroker(tmp / "broker")
    broker.start()
    database_url = f"sqlite+aiosqlite:///{tmp / 'clawbeat.db'}"
    run_coroutine(lambda: migrate.upgrade(database_url))
    token = run_coroutine(lambda: make_token(database_url, TokenScope.ADMIN))
    settings = {k: v for k, v in FAST.items() if k != "mqtt_keepalive"}
    monitor = MonitorProcess(
        broker, database_url, tmp / "monitor.log", **settings, http_bind="127.0.0.1:0"
    )
    watch = StatusWatch(broker)
    try:
        monitor.start(probe=watch)
        # A real device, so operations on existing ids have something to find.
        broker.add_device("pump-1")
        device = MqttProbe(broker.url("pump-1"), client_id="pump-1")
        device.connect()
        device.publish(
            "clawbeat/v1/devices/pump-1/heartbeat",
            json.dumps({"seq": 0, "session": "s1", "interval": 60, "metrics": {"t": 1}}),
            retain=True,
        )
        device.close()
        watch.wait_state("pump-1", "online")

        def url() -> str | None:
            match = _LISTENING.search(Path(monitor.log_path).read_text(errors="replace"))
            return match.group(1) if match else None

        yield Live(wait_until(url, 10, what="the HTTP address"), token)
    finally:
        watch.close()
        monitor.stop()
        broker.stop()


# The event stream never ends by design; tests/integration/test_api_events.py covers it.
EXCLUDED = {"/api/events"}
# Bodies whose validity depends on other data, which no schema can say: a rule naming a
# channel that does not exist, a device moved to an unknown class, an apprise URL of a
# service apprise does not know. Well-formed but unacceptable, they are a 422 with a
# message; schemathesis would call that "valid data rejected", so that one check is off
# for these operations (every other check, and all checks elsewhere, still apply).
REFERENCING = {"/api/channels/{name}", "/api/rules/{name}", "/api/devices/{device_id}"}


def _fuzz(operation: Any, headers: dict[str, str]) -> None:
    """A few generated requests for one operation, each response checked."""
    excluded = [positive_data_acceptance] if operation.path in REFERENCING else []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.target],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    check()


def test_the_api_keeps_to_its_openapi_document(live: Live) -> None:
    schema = schemathesis.openapi.from_url(f"{live.base_url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {live.token}"}
    tested: list[str] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if operation.path in EXCLUDED:
            continue
        tested.append(operation.label)
        try:
            _fuzz(operation, headers)
        except Exception as exc:  # collect them all, then fail with every one
            failures.append(f"{operation.label}: {exc}")
    assert len(tested) >= 25, tested
    assert not failures, "\n\n".join(failures)


@pytest.mark.anyio
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_clients_see_the_security_scheme_in_the_openapi_document(database_url: str) -> None:
    settings = MonitorSettings(database_url=database_url)
    parts = await open_monitor(settings)
    try:
        document = create_app(MonitorService(settings, parts)).openapi()
    finally:
        await parts.close()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `clawbeat token create --scope read|admin`.",
    }
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path.startswith("/api/"):
                assert operation.get("security") == [{"bearer": []}], (method, path)
                assert "401" in operation["responses"], (method, path)
            if method in ("put", "patch", "delete"):
                assert "403" in operation["responses"], (method, path)

"""A malformed broker URL is refused in one line that never shows its password."""

from __future__ import annotations

import pytest

from device_client.errors import InvalidBrokerUrl
from device_client.urls import parse_broker_url
from monitor.parts import open_monitor
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from tests.integration.test_cli import clawbeat

SECRET = "s3cret"
# Typos an operator makes, most of them with a password that is not percent-encoded.
MALFORMED = [
    f"mqtt://monitor:{SECRET}-pw@host:notaport",
    f"mqtt://monitor:{SECRET}-pw@host:99999",
    f"http://monitor:{SECRET}-pw@host",
    f"mqtt://monitor:{SECRET}-pw@",
    f"mqtt://monitor:{SECRET}/pw@host",
    f"mqtt://monitor:{SECRET}?pw@host:1883",
    f"mqtt://monitor:{SECRET}#pw@host",
    f"mqtt://monitor:{SECRET}@pw@host:x",
    f"mqtt://monitor:{SECRET}-pw",
    f"mqtt://monitor:{SECRET}-pw@host/path",
    f"mqtt:/monitor:{SECRET}-pw@host",
    f"monitor:{SECRET}-pw@host",
    f"mqtt://monitor:{SECRET}-pw@[::1",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_monitor_start_refuses_without_echoing_the_password(url: str) -> None:
    result = clawbeat("monitor", "--http-bind", "", env={"CLAWBEAT_MQTT_URL": url})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("clawbeat monitor: error: invalid broker URL")
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("url", MALFORMED[:4])
def test_device_refuses_without_echoing_the_password(url: str) -> None:
    result = clawbeat("device", "--id", "pump-7", "--broker", url)
    assert result.returncode == 2, result.stderr
    assert "invalid broker URL" in result.stderr
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("url", MALFORMED)
def test_one_parser_hides_the_password_in_errors(url: str) -> None:
    with pytest.raises(InvalidBrokerUrl) as info:
        parse_broker_url(url)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_monitors_broker_address_keeps_the_password_out_of_repr(
    database_url: str,
) -> None:
    settings = MonitorSettings(
        mqtt_url=f"mqtt://monitor:{SECRET}@host:1883", database_url=database_url
    )
    parts = await open_monitor(settings)
    try:
        service = MonitorService(settings, parts)
        assert service.address.password == SECRET
        assert SECRET not in repr(service.address)
        assert SECRET not in repr(vars(service))
        assert SECRET not in repr(parts)
    finally:
        await parts.close()


@pytest.mark.parametrize(
    "bad_setting",
    [{"CLAWBEAT_MQTT_KEEPALIVE": "1"}, {"CLAWBEAT_HTTP_TLS_CERT": "/etc/ssl/x.pem"}],
    ids=["field", "model"],
)
def test_another_bad_setting_is_one_line_without_the_urls(bad_setting: dict[str, str]) -> None:
    # pydantic's own message quotes every input of a model-level check: both URLs.
    env = {
        "CLAWBEAT_MQTT_URL": f"mqtt://monitor:{SECRET}@host",
        "CLAWBEAT_DATABASE_URL": f"postgresql://clawbeat:{SECRET}@db/clawbeat",
        **bad_setting,
    }
    result = clawbeat("monitor", env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("clawbeat monitor: error: invalid ")
    assert SECRET not in result.stderr + result.stdout

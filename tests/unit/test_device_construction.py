"""``Device`` refuses bad options when it is built, before any network activity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import device_client
from device_client import Device, InvalidBrokerUrl, InvalidDeviceId


def _device(**kwargs: Any) -> Device:
    kwargs.setdefault("device_id", "pump-7")
    kwargs.setdefault("broker", "mqtt://127.0.0.1:1")
    return Device(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"device_id": "pump/7"}, InvalidDeviceId, "invalid device id"),
        ({"device_id": "x" * 65}, InvalidDeviceId, "invalid device id"),
        ({"broker": "tcp://h"}, InvalidBrokerUrl, "mqtt://"),
        ({"interval": 0.01}, ValueError, "interval"),
        ({"keepalive": 0}, ValueError, "keepalive"),
        ({"keepalive": 301}, ValueError, "protocol v1"),
        ({"jitter": -1}, ValueError, "jitter"),
        ({"backoff_base": 0}, ValueError, "backoff"),
        ({"topic_root": "a/#"}, ValueError, "topic root"),
        ({"fw": "v" * 65}, ValueError, "fw"),
        ({"tls_ca": "ca.crt"}, InvalidBrokerUrl, "mqtts://"),
    ],
)
def test_bad_options_fail_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _device(**kwargs)


def test_missing_ca_file_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _device(broker="mqtts://h", tls_ca=tmp_path / "nope.crt")


def test_a_device_that_never_started_stops_quietly() -> None:
    device = _device()
    assert not device.connected
    assert device.session is None
    assert device.interval == 30.0
    assert device.stop() is False
    assert device.wait_connected(0) is False


def test_a_device_is_started_once() -> None:
    device = _device(connect_timeout=0.5)
    device.start()  # nothing listens on port 1: not an error, it keeps retrying
    try:
        with pytest.raises(RuntimeError, match="already started"):
            device.start()
        with pytest.raises(RuntimeError, match="already started"):
            device.run_forever()
    finally:
        device.stop()


def test_public_surface() -> None:
    assert sorted(device_client.__all__) == [
        "BrokerUrl",
        "ConnectRefused",
        "Device",
        "DeviceError",
        "InvalidBrokerUrl",
        "InvalidDeviceId",
        "parse_broker_url",
    ]
    assert issubclass(InvalidBrokerUrl, device_client.DeviceError)
    assert (Path(device_client.__file__).parent / "py.typed").exists()

"""The broker configuration: authentication, per-device ACL, TLS with dev certificates."""

from __future__ import annotations

import json
import time

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from device_client import protocol
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

ROOT = protocol.DEFAULT_TOPIC_ROOT


def _refused(reason: ReasonCode) -> bool:
    return reason.is_failure


def test_anonymous_connection_is_refused(broker: TestBroker) -> None:
    probe = MqttProbe(f"mqtt://{broker.host}:{broker.port}", client_id="anon")
    try:
        assert _refused(probe.connect())
    finally:
        probe.close()


def test_wrong_password_is_refused(broker: TestBroker, device_id: str) -> None:
    broker.add_device(device_id, "right-password")
    probe = MqttProbe(broker.url(device_id, "wrong-password"))
    try:
        assert _refused(probe.connect())
    finally:
        probe.close()
    good = MqttProbe(broker.url(device_id, "right-password"))
    try:
        assert not _refused(good.connect())
    finally:
        good.close()


def test_device_cannot_touch_another_devices_topics(broker: TestBroker) -> None:
    broker.add_devices(["dev-a", "dev-b"], "pw")
    monitor = MqttProbe(broker.url(), client_id="monitor")
    assert not _refused(monitor.connect())
    monitor.subscribe(f"{ROOT}/devices/#")
    # The monitor configures B; A must not be able to read it.
    monitor.publish(f"{ROOT}/devices/dev-b/config", b'{"interval": 5}', retain=True)

    a = MqttProbe(broker.url("dev-a", "pw"))
    assert not _refused(a.connect())
    a.subscribe("#")
    a.subscribe(f"{ROOT}/devices/dev-b/config")
    forged = json.dumps({"seq": 1, "session": "s1", "interval": 1}).encode()
    a.publish(f"{ROOT}/devices/dev-b/heartbeat", forged)
    a.publish(f"{ROOT}/devices/dev-b/presence", b'{"state":"offline","session":"x"}')
    a.publish(f"{ROOT}/status/dev-b", b'{"state":"online"}')
    # A's own heartbeat goes through: proves the denials above are ACL, not a dead link.
    a.publish(f"{ROOT}/devices/dev-a/heartbeat", forged)
    monitor.wait_for(lambda m: m.topic == f"{ROOT}/devices/dev-a/heartbeat")

    b = MqttProbe(broker.url("dev-b", "pw"))
    assert not _refused(b.connect())
    b.subscribe(f"{ROOT}/devices/dev-b/config")
    b.wait_for(lambda m: m.topic == f"{ROOT}/devices/dev-b/config")

    time.sleep(0.5)
    assert monitor.matching(lambda m: "dev-b/heartbeat" in m.topic) == []
    assert monitor.matching(lambda m: "dev-b/presence" in m.topic) == []
    # Subscribing to '#' shows A nothing but what it may read: its own (empty) config.
    assert [m.topic for m in a.messages] == []
    for probe in (a, b, monitor):
        probe.close()


def test_ops_reads_status_but_cannot_write_or_read_devices(broker: TestBroker) -> None:
    broker.add_device("dev-c", "pw")
    ops = MqttProbe(broker.url(broker.ops_user), client_id=broker.ops_user)
    assert not _refused(ops.connect())
    ops.subscribe(f"{ROOT}/#")
    monitor = MqttProbe(broker.url(), client_id=broker.monitor_user)
    monitor.connect()
    monitor.publish(f"{ROOT}/status/dev-c", b'{"state":"online"}', retain=True)
    ops.wait_for(lambda m: m.topic == f"{ROOT}/status/dev-c")

    ops.publish(f"{ROOT}/devices/dev-c/config", b'{"interval": 1}', retain=True)
    dev = MqttProbe(broker.url("dev-c", "pw"))
    dev.connect()
    dev.publish(f"{ROOT}/devices/dev-c/heartbeat", b'{"seq":0,"session":"s","interval":1}')
    dev.subscribe(f"{ROOT}/devices/dev-c/config")
    time.sleep(0.5)
    assert dev.messages == []  # the ops user's config write was denied
    assert ops.matching(lambda m: "/devices/" in m.topic) == []
    for probe in (ops, monitor, dev):
        probe.close()


def test_tls_listener_with_dev_certificates(broker: TestBroker, device_id: str) -> None:
    password = broker.add_device(device_id)
    probe = MqttProbe(broker.url(device_id, password, tls=True), ca_file=broker.ca_file)
    try:
        assert not _refused(probe.connect())
        probe.subscribe(f"{ROOT}/devices/{device_id}/config")
    finally:
        probe.close()


def test_tls_refuses_a_client_that_does_not_trust_the_broker(
    broker: TestBroker, device_id: str
) -> None:
    password = broker.add_device(device_id)
    probe = MqttProbe(broker.url(device_id, password, tls=True))  # system CAs only
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        probe.connect()

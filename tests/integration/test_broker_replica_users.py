"""Replicas of a cluster on one Mosquitto: each its own user, all connected at once.

The shipped configuration binds the client id to the username, so replicas sharing
one user would take each other's connection over. `clawbeat broker acl --monitor-user`
gives each replica the monitor's rights; the fault tests tell replicas apart by the
client id the broker logs for each publish.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.monitor import wait_until
from tests.harness.monitor_cluster import publish_log
from tests.harness.mosquitto import TestBroker, check_mosquitto_installed
from tests.mqtt_helpers import MqttProbe

ROOT = "clawbeat/v1"


@pytest.fixture
def logged_broker(tmp_path: Path) -> Iterator[TestBroker]:
    missing = check_mosquitto_installed()
    if missing:
        pytest.fail(missing, pytrace=False)
    broker = TestBroker(tmp_path / "broker")
    broker.log_publishes()
    broker.start()
    yield broker
    broker.stop()


def test_each_replica_reads_the_fleet_and_writes_status_as_itself(
    logged_broker: TestBroker,
) -> None:
    broker = logged_broker
    replicas = ["monitor-a", "monitor-b", "monitor-c"]
    broker.add_monitor_users(replicas)
    broker.add_device("pump-1")
    clients = {name: MqttProbe(broker.url(name), client_id=name) for name in replicas}
    device = MqttProbe(broker.url("pump-1"), client_id="pump-1")
    ops = MqttProbe(broker.url(broker.ops_user), client_id=broker.ops_user)
    try:
        for client in [*clients.values(), device, ops]:
            assert not client.connect().is_failure
        for client in clients.values():
            client.subscribe(f"{ROOT}/devices/+/heartbeat")
        ops.subscribe(f"{ROOT}/status/#")
        with publish_log(broker) as log:
            device.publish(f"{ROOT}/devices/pump-1/heartbeat", json.dumps({"seq": 1}))
            for client in clients.values():
                client.wait_for(lambda m: m.topic.endswith("pump-1/heartbeat"))
            for name, client in clients.items():
                client.publish(f"{ROOT}/status/{name}-says", b"{}")
            ops.wait_for(lambda m: m.topic.startswith(f"{ROOT}/status/"), count=3)
            # Still three connections: none took another's over.
            for client in clients.values():
                assert client.client.is_connected()

            def by_client() -> dict[str, str]:
                return {p.client: p.topic for p in log.publishes() if "/status/" in p.topic}

            # The log is read as the broker writes it: wait for it to catch up.
            wait_until(lambda: len(by_client()) == 3, 10, what="three publishes logged")
        assert by_client() == {name: f"{ROOT}/status/{name}-says" for name in replicas}
    finally:
        for client in [*clients.values(), device, ops]:
            client.close()

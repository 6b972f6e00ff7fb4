"""nats-server's ``partition(P, token)`` mapping sends every device where partition_of says.

A real nats-server (the Debian package, 2.9) with MQTT enabled and the mapping
``monitor.cluster.partitions.nats_mapping`` produces; devices publish heartbeats over
MQTT as they do to Mosquitto; a core NATS subscriber records the subject each lands on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_client.protocol import Topics
from monitor.cluster.partitions import nats_mapping, partition_of
from tests.harness.monitor import wait_until
from tests.harness.nats import CoreSubscriber, NatsServer, nats_server_binary

PARTITIONS = 64
ROOT = "clawbeat/v1"


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    if nats_server_binary() is None:
        pytest.fail("nats-server is not installed: `apt-get install nats-server`", pytrace=False)
    source, destination = nats_mapping(topic_root=ROOT, partitions=PARTITIONS, kind="heartbeat")
    server = NatsServer(tmp_path / "nats", mappings={source: destination})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_nats_routes_each_device_to_the_partition_the_monitor_computes(nats: NatsServer) -> None:
    ids = [f"sensor-{n:03d}" for n in range(150)] + ["a", "foobar", "Plug_Kitchen-2", "x" * 64]
    subscriber = CoreSubscriber(nats.port, "clawbeat.v1.partitions.>")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-publisher")
    client.connect("127.0.0.1", nats.mqtt_port, 30)
    client.loop_start()
    try:
        topics = Topics(ROOT)
        for device_id in ids:
            client.publish(topics.heartbeat(device_id), b"{}", qos=1).wait_for_publish(10)
        wait_until(
            lambda: len(subscriber.received()) >= len(ids), 20, what="every heartbeat routed"
        )
    finally:
        client.loop_stop()
        client.disconnect()
        subscriber.close()

    landed: dict[str, int] = {}
    pattern = re.compile(r"clawbeat\.v1\.partitions\.(\d+)\.devices\.([^.]+)\.heartbeat")
    for subject in subscriber.received():
        match = pattern.fullmatch(subject)
        assert match, subject
        landed[match[2]] = int(match[1])
    assert landed == {device_id: partition_of(device_id, PARTITIONS) for device_id in ids}
    assert landed["a"] == 44  # the unit test's known value, from the live server
    assert len(set(landed.values())) > PARTITIONS // 2  # spread, not one bucket

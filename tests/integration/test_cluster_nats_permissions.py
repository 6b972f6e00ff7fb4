"""Per-device NATS permissions (``clawbeat broker nats-auth``) on a real 3-node cluster.

The users file goes through the CLI, its output is the cluster's authorization block,
the partition mapping is on, and real MQTT clients log in on different nodes: a device
cannot publish as another device (heartbeat, presence, or its will), cannot read another
device's config nor subscribe to everything, cannot use core NATS; the monitor reads
every device and partition topic and writes config and status; ops only reads.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cluster.partitions import nats_mapping, partition_of
from tests.harness.monitor import wait_until
from tests.harness.mqtt_user import MqttUser
from tests.harness.nats import nats_server_binary
from tests.harness.nats_cluster import MqttLogin, NatsCluster, NatsNode

ROOT = "clawbeat/v1"
P = 64
PASSWORDS = {"monitor": "monitor-pw", "ops": "ops-pw", "pump-1": "pw-1", "pump-2": "pw-2"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    if nats_server_binary() is None:
        pytest.fail("nats-server is not installed: `apt-get install nats-server`", pytrace=False)
    users = tmp_path / "users"
    users.write_text("".join(f"{name}:{pw}\n" for name, pw in PASSWORDS.items()))
    auth = tmp_path / "auth.conf"
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "broker", "nats-auth", "--users", str(users),
         "--root", ROOT, "--partitions", str(P), "--output", str(auth)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert auth.stat().st_mode & 0o077 == 0  # passwords inside
    mappings = dict(
        nats_mapping(topic_root=ROOT, partitions=P, kind=kind) for kind in ("heartbeat", "presence")
    )
    nats = NatsCluster.generated(
        tmp_path / "nats",
        mappings=mappings,
        authorization=auth.read_text(),
        login=MqttLogin("monitor", PASSWORDS["monitor"], f"{ROOT}/monitor/probe"),
    )
    nats.start()
    try:
        yield nats
    finally:
        nats.stop()


def _users(node: NatsNode) -> set[str]:
    """Users connected to ``node``: the server handled a close once its user is gone."""
    connz = node.monitoring("connz?auth=true")
    return {conn.get("authorized_user", "") for conn in connz.get("connections") or []}


def _partition_topic(device_id: str, kind: str) -> str:
    return f"{ROOT}/partitions/{partition_of(device_id, P)}/devices/{device_id}/{kind}"


def test_a_device_can_only_publish_and_read_its_own_topics(cluster: NatsCluster) -> None:
    node = [n.ports.mqtt for n in cluster.nodes]
    monitor = MqttUser(node[0], "monitor", passwords=PASSWORDS)
    for filter_ in (
        f"{ROOT}/partitions/+/devices/+/heartbeat",
        f"{ROOT}/partitions/+/devices/+/presence",
        f"{ROOT}/devices/+/config",
    ):
        assert monitor.subscribe(filter_) == 1
    pump1 = MqttUser(
        node[1], "pump-1", will_topic=f"{ROOT}/devices/pump-2/presence", passwords=PASSWORDS
    )
    pump2 = MqttUser(
        node[2], "pump-2", will_topic=f"{ROOT}/devices/pump-2/presence", passwords=PASSWORDS
    )

    # Forged heartbeat and presence (as pump-2), then pump-1's own: the monitor sees its
    # own in order; had the forged ones passed, they would have arrived before.
    pump1.publish(f"{ROOT}/devices/pump-2/heartbeat", b'{"forged":1}')
    pump1.publish(f"{ROOT}/devices/pump-2/presence", b'{"forged":1}', retain=True)
    pump1.publish(f"{ROOT}/devices/pump-1/heartbeat", b"{}")
    pump1.publish(f"{ROOT}/devices/pump-1/presence", b'{"state":"online"}', retain=True)
    own = _partition_topic("pump-1", "presence")
    monitor.wait(lambda: own in monitor.topics(), "pump-1's own presence")
    assert monitor.topics() == [_partition_topic("pump-1", "heartbeat"), own]

    # Config: its own arrives, another device's and '#' are refused outright.
    assert pump1.subscribe(f"{ROOT}/devices/pump-2/config") == 128
    assert pump1.subscribe("#") == 128
    assert pump1.subscribe(f"{ROOT}/devices/pump-1/config") == 1
    monitor.publish(f"{ROOT}/devices/pump-2/config", b'{"interval":5}', retain=True)
    monitor.publish(f"{ROOT}/devices/pump-1/config", b'{"interval":7}', retain=True)
    pump1.wait(lambda: pump1.messages, "its config")
    assert pump1.messages == [(f"{ROOT}/devices/pump-1/config", b'{"interval":7}', False)]

    # A will naming another device is refused when the server publishes it; pump-2's
    # own will (published after it) arrives, pump-1's forged one never does.
    pump1.die()
    wait_until(lambda: "pump-1" not in _users(cluster.nodes[1]), 10, what="node 1 to close pump-1")
    pump2.die()
    will = _partition_topic("pump-2", "presence")
    monitor.wait(lambda: will in monitor.topics(), "pump-2's will")
    assert monitor.topics().count(will) == 1

    # The monitor also writes status; ops reads it and can write nothing.
    ops = MqttUser(node[1], "ops", passwords=PASSWORDS)
    assert ops.subscribe(f"{ROOT}/status/#") == 1
    assert ops.subscribe(f"{ROOT}/devices/+/heartbeat") == 128
    ops.publish(f"{ROOT}/status/pump-1", b'{"forged":1}', retain=True)
    monitor.publish(f"{ROOT}/status/pump-1", b'{"state":"online"}', retain=True)
    ops.wait(lambda: ops.messages, "status")
    assert ops.messages == [(f"{ROOT}/status/pump-1", b'{"state":"online"}', False)]
    for client in (monitor, ops):
        client.close()


def test_device_credentials_do_not_open_core_nats(cluster: NatsCluster) -> None:
    port = cluster.nodes[0].ports.client
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rb")
        stream.readline()  # INFO
        sock.sendall(b'CONNECT {"user":"pump-1","pass":"pw-1","verbose":false}\r\nPING\r\n')
        assert stream.readline().startswith(b"-ERR 'Authorization Violation'")

"""End to end: a monitor reading partition topics from a real 3-node NATS cluster.

The cluster remaps heartbeat and presence (wills included) to
``{root}/partitions/{p}/...`` (the mapping and permissions deploy/nats ships). With
``partition_topics=true`` a monitor running alone subscribes to every partition and reads
the device id from that topic shape: devices come online, and a SIGKILLed device goes
offline by its will, once. The broker keeps retained messages under the mapped subject,
so a subscription made later (a replica taking a partition over) receives the
partition's retained heartbeats and presence.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cluster.partitions import partition_of
from tests.harness.monitor import (
    MonitorProcess,
    StatusWatch,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.mqtt_user import MqttUser
from tests.harness.nats import nats_server_binary
from tests.harness.nats_fleet import ROOT, NatsBroker

FAST = {
    "grace": 10,  # see test_nats_failover.py: above a NATS node's recovery time
    "missed_limit": 2,
    "warmup": 3,
    "will_hold": 0.5,
    "default_interval": 2,
    "flush_interval": 0.2,
    "summary_interval": 1,
}
P = 64
FLEET = 20
PREFIX = "pt-"
VICTIM = "pt-victim"
PASSWORD = "fleet-secret"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsBroker]:
    if nats_server_binary() is None:
        pytest.fail("nats-server is not installed: `apt-get install nats-server`", pytrace=False)
    ids = [f"{PREFIX}{i:05d}" for i in range(FLEET)] + [VICTIM]
    broker = NatsBroker(tmp_path / "broker", ids, device_password=PASSWORD, partitions=P)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "device_client.cli", *args], stdout=out, stderr=out
    )


@SQLITE_ONLY
def test_a_partition_topic_monitor_sees_devices_come_and_a_killed_one_go(
    nats: NatsBroker, database_url: str, tmp_path: Path
) -> None:
    fleet_ids = [f"{PREFIX}{i:05d}" for i in range(FLEET)]
    watch = StatusWatch(nats)
    monitor = MonitorProcess(
        nats,
        database_url,
        tmp_path / "monitor.log",
        mqtt_url=nats.urls("monitor"),
        mqtt_protocol="3.1.1",
        partition_topics="true",
        partitions=P,
        **FAST,
    )
    monitor.start(probe=watch)
    common = ["--broker", nats.urls(), "--password", PASSWORD, "--interval", "2",
              "--keepalive", "5", "--backoff-cap", "1"]  # fmt: skip
    fleet = _spawn(
        ["simulate", "--devices", str(FLEET), "--prefix", PREFIX, *common],
        tmp_path / "simulate.log",
    )
    victim = _spawn(["device", "--id", VICTIM, *common], tmp_path / "victim.log")
    try:
        everyone = [*fleet_ids, VICTIM]
        wait_until(
            lambda: all(
                d in (devices := read_devices(database_url)) and devices[d].state == "online"
                for d in everyone
            ),
            30,
            what="every device online through the partition topics",
        )
        killed_at = datetime.now(UTC)
        mark = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        body = watch.wait_state(VICTIM, "offline", reason="connection-lost", after=mark)
        assert body["state"] == "offline"

        # A later subscriber to the victim's partition gets what NATS retained there.
        partition = partition_of(VICTIM, P)
        late = MqttUser(nats.nodes[1].ports.mqtt, "monitor", passwords=nats.passwords)
        for kind in ("heartbeat", "presence"):
            assert late.subscribe(f"{ROOT}/partitions/{partition}/devices/{VICTIM}/{kind}") == 1
        late.wait(lambda: len(late.messages) >= 2, "the retained heartbeat and presence")
        retained = {
            topic.rsplit("/", 1)[1]: (payload, flag) for topic, payload, flag in late.messages
        }
        assert retained["presence"][1] is True
        assert json.loads(retained["presence"][0])["state"] == "offline"  # the will
        assert retained["heartbeat"][1] is True
        late.close()

        after = [t for t in read_transitions(database_url) if t.at >= killed_at]
        assert [(t.device_id, t.new_state, t.reason) for t in after] == [
            (VICTIM, "offline", "connection-lost")
        ]
        devices = read_devices(database_url)
        assert all(devices[d].state == "online" for d in fleet_ids)
        assert monitor.running()
    finally:
        fleet.terminate()
        fleet.wait(20)
        if victim.poll() is None:
            victim.kill()
        monitor.stop()
        watch.close()

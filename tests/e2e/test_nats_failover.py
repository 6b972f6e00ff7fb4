"""End to end on a real 3-node NATS cluster: one node is SIGKILLed under a healthy fleet.

Devices (``clawbeat simulate``, the SDK's links, given every node's URL) spread over
the three nodes; one ``clawbeat monitor`` (MQTT 3.1.1, every node's URL) watches them
on SQLite. SIGKILL of a node publishes no will and saves nothing: its devices must
reconnect to another node by themselves, and the monitor must report none of them,
nor any other device, offline or stale (checked on the status topics and in the
database's transitions) while the cluster recovers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.monitor import (
    MonitorProcess,
    StatusWatch,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.nats import nats_server_binary
from tests.harness.nats_fleet import NatsBroker

# A killed node's raft groups (the MQTT gateway's session, message and retained streams)
# elect new leaders among the survivors within their 2-5 s election timeout, and a
# connect that needs the old leader waits up to the gateway's 4 s JetStream API
# timeout: a device can take about 10 s to get a CONNACK elsewhere. The grace covers
# that, as a production grace (fractions of a 30 s interval) does.
FAST = {
    "grace": 10,
    "missed_limit": 2,
    "warmup": 3,
    "will_hold": 0.5,
    "default_interval": 2,
    "flush_interval": 0.2,
    "summary_interval": 1,
}
INTERVAL = 2.0
FLEET = 30
PREFIX = "nf-"
PASSWORD = "fleet-secret"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsBroker]:
    if nats_server_binary() is None:
        pytest.fail("nats-server is not installed: `apt-get install nats-server`", pytrace=False)
    ids = [f"{PREFIX}{i:05d}" for i in range(FLEET)]
    broker = NatsBroker(tmp_path / "broker", ids, device_password=PASSWORD)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _simulate(nats: NatsBroker, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "device_client.cli", "simulate", "--devices", str(FLEET),
         "--prefix", PREFIX, "--broker", nats.urls(), "--password", PASSWORD,
         "--interval", str(INTERVAL), "--keepalive", "5", "--backoff-cap", "1",
         "--report-every", "1"],
        stdout=out, stderr=out,
    )  # fmt: skip


@SQLITE_ONLY
@pytest.mark.parametrize("victim_index", [2, 0], ids=["a-devices-node", "the-monitors-node-too"])
def test_devices_move_to_another_node_when_theirs_is_killed(
    nats: NatsBroker, database_url: str, tmp_path: Path, victim_index: int
) -> None:
    ids = [f"{PREFIX}{i:05d}" for i in range(FLEET)]
    survivors = [node for index, node in enumerate(nats.nodes) if index != victim_index]
    nats.home = 1  # ops watches from a node that stays up
    watch = StatusWatch(nats)
    monitor = MonitorProcess(
        nats,
        database_url,
        tmp_path / "monitor.log",
        mqtt_url=nats.urls("monitor"),
        mqtt_protocol="3.1.1",
        **FAST,
    )
    monitor.start(probe=watch)
    fleet = _simulate(nats, tmp_path / "simulate.log")
    try:
        wait_until(
            lambda: all(
                d in (devices := read_devices(database_url)) and devices[d].state == "online"
                for d in ids
            ),
            30,
            what="the fleet online",
        )
        # The fleet spreads over the nodes; the monitor is on the first of its list.
        on_node = [nats.connected(node) for node in nats.nodes]
        assert "monitor" in on_node[0]
        victim = nats.nodes[victim_index]
        assert len(set(ids) & on_node[victim_index]) >= FLEET // 4, on_node

        killed_at = datetime.now(UTC)
        mark = time.monotonic()
        victim.kill()

        # Its devices (and the monitor) come back on the surviving nodes, by themselves.
        def reconnected() -> bool:
            alive = set().union(*(nats.connected(node) for node in survivors))
            return {*ids, "monitor"} <= alive

        wait_until(reconnected, 60, what="every client connected to a surviving node")
        back = datetime.now(UTC)
        # Every device then beats on for longer than a stale verdict needs (interval x
        # (missed_limit + 1) + grace), and the monitor records those heartbeats.
        quiet = INTERVAL * (FAST["missed_limit"] + 1) + FAST["grace"]

        def beaten_long_enough() -> bool:
            devices = read_devices(database_url)
            return all(
                (seen := devices[d].last_seen) is not None and (seen - back).total_seconds() > quiet
                for d in ids
            )

        wait_until(beaten_long_enough, 60, what="heartbeats recorded after the reconnects")

        after = [t for t in read_transitions(database_url) if t.at >= killed_at]
        assert [t for t in after if t.new_state != "online"] == []
        devices = read_devices(database_url)
        assert {d: devices[d].state for d in ids} == dict.fromkeys(ids, "online")
        seen = watch.matching(lambda m: m.at >= mark and "/status/" in m.topic)
        assert seen, "the monitor kept publishing status"
        assert {m.topic for m in seen if b'"online"' not in m.payload} == set()
        assert monitor.running()
    finally:
        fleet.terminate()
        fleet.wait(20)
        monitor.stop()
        watch.close()

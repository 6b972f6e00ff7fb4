"""Two replicas on a real 3-node NATS cluster that routes devices by partition.

With ``partition_topics`` each replica subscribes to, and keeps in its engine, only the
partitions it holds: receive work divides between them. SIGKILL one together with one
of its devices: the survivor loads the dead one's partitions from the database,
subscribes to them (NATS keeps each partition's retained heartbeats and wills), gives
their devices an interval and a grace to be heard, and reports the killed device
offline once, with no verdict on the others.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.cluster import leases
from monitor.cluster.partitions import partition_of
from tests.harness.alert_sinks import free_port
from tests.harness.monitor import (
    MonitorProcess,
    StatusWatch,
    _query,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.nats import nats_server_binary
from tests.harness.nats_fleet import NatsBroker

P = 8
FLEET = 24
PREFIX = "nr-"
PASSWORD = "fleet-secret"
INTERVAL = 1.0
# Long enough that a loaded machine's stalls do not make leases change hands.
LEASES = {"lease_ttl": 8.0, "lease_renew_every": 1.0, "lease_margin": 2.0}
FAST = {
    "grace": 3,
    "missed_limit": 2,
    "warmup": 3,
    "will_hold": 0.5,
    "default_interval": INTERVAL,
    "flush_interval": 0.2,
    "summary_interval": 1,
}
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
IDS = [f"{PREFIX}{i:05d}" for i in range(FLEET)]


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsBroker]:
    if nats_server_binary() is None:
        pytest.fail("nats-server is not installed: `apt-get install nats-server`", pytrace=False)
    broker = NatsBroker(tmp_path / "broker", IDS, device_password=PASSWORD, partitions=P)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def owners(database_url: str) -> dict[int, str | None]:
    held = _query(database_url, leases.lease_owners)
    return {p: None if o is None else o.split(":")[0] for p, o in held.items()}


def tracked(port: int) -> int:
    """Devices in the replica's engine (``clawbeat_devices``, summed over states)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return int(
        sum(
            s.value
            for family in text_string_to_metric_families(text)
            if family.name == "clawbeat_devices"
            for s in family.samples
        )
    )


@POSTGRES_ONLY
def test_replicas_divide_the_fleet_and_one_takes_over_what_a_killed_one_held(
    nats: NatsBroker, database_url: str, tmp_path: Path
) -> None:
    watch = StatusWatch(nats)
    ports = {name: free_port() for name in ("a", "b")}
    replicas = {
        name: MonitorProcess(
            nats,
            database_url,
            tmp_path / f"replica-{name}.log",
            mqtt_url=nats.urls("monitor", first=i),
            mqtt_protocol="3.1.1",
            mqtt_client_id=f"monitor-{name}",  # NATS does not bind client ids to users
            cluster="true",
            replica=name,
            partition_topics="true",
            partitions=P,
            http_bind=f"127.0.0.1:{ports[name]}",
            **LEASES,
            **FAST,
        )
        for i, name in enumerate(("a", "b"))
    }
    fleet: subprocess.Popen[bytes] | None = None
    try:
        for replica in replicas.values():
            replica.start(probe=watch)
        wait_until(
            lambda: sorted(owners(database_url).values(), key=str) == ["a"] * 4 + ["b"] * 4,
            60,
            what="an even split",
        )
        held = owners(database_url)
        log = (tmp_path / "simulate.log").open("ab")
        fleet = subprocess.Popen(
            [sys.executable, "-m", "device_client.cli", "simulate", "--devices", str(FLEET),
             "--prefix", PREFIX, "--broker", nats.urls(), "--password", PASSWORD,
             "--interval", str(INTERVAL), "--keepalive", "5", "--backoff-cap", "1"],
            stdout=log, stderr=log,
        )  # fmt: skip
        wait_until(
            lambda: all(
                d in (devices := read_devices(database_url)) and devices[d].state == "online"
                for d in IDS
            ),
            60,
            what="the fleet online in the database",
        )
        # Each replica holds in its engine the devices of its own partitions, no other:
        # it was sent nothing else.
        mine = Counter(held[partition_of(d, P)] for d in IDS)
        assert set(mine) == {"a", "b"}
        for name, port in ports.items():
            share = mine[name]

            def holds_share(port: int = port, share: int = share) -> bool:
                return tracked(port) == share

            wait_until(holds_share, 20, what=f"{name}'s share")

        replicas["a"].kill()
        wait_until(
            lambda: set(owners(database_url).values()) == {"b"},
            60,
            what="b owning every partition",
        )
        wait_until(lambda: tracked(ports["b"]) == FLEET, 20, what="b tracking the whole fleet")
        # Time for a false verdict to show: the taken devices' interval + grace, twice.
        time.sleep(2 * (INTERVAL + FAST["grace"]))
        # No down verdict, before or after the takeover (a device whose retained
        # heartbeat a new subscription replayed first is first seen unknown, R7).
        verdicts = [
            (t.device_id, t.old_state, t.new_state)
            for t in read_transitions(database_url)
            if t.new_state not in ("online", "unknown")
        ]
        assert verdicts == []
        assert all(read_devices(database_url)[d].state == "online" for d in IDS)
        assert all(s["state"] == "online" for s in watch.latest_all().values())
        assert "acting for partitions" in replicas["b"].log_path.read_text(errors="replace")
    finally:
        if fleet is not None:
            fleet.terminate()
            fleet.wait(20)
        for replica in replicas.values():
            replica.stop()
        watch.close()

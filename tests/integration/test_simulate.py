"""``clawbeat simulate`` against a real Mosquitto: a fleet in one process, with faults."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_client import protocol
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe, Received

TOPICS = protocol.Topics()
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "fleet-password"
DIES = re.compile(r"device (\S+) dies \(session (\w+)\)")
MUTES = re.compile(r"device (\S+) stops beating")
FLAPS = re.compile(r"device (\S+) flaps \(session (\w+)\)")


class Simulator:
    def __init__(self, tmp_path: Path, broker: TestBroker, prefix: str, *args: str) -> None:
        self.log_path = tmp_path / "simulate.log"
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWBEAT_")}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "device_client.cli",
                "simulate",
                *("--broker", f"mqtt://{broker.host}:{broker.port}"),
                *("--prefix", prefix, "--password", PASSWORD, "--seed", "7"),
                *("--report-every", "1", "--connect-rate", "1000"),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        print(f"--- simulate log ---\n{self.log()}")  # shown when a test fails


@pytest.fixture
def fleet_prefix(device_id: str) -> str:
    # {prefix}{index:05d} must stay a valid (<= 64 character) device id.
    return device_id[:50] + "-"


@pytest.fixture
def observer(broker: TestBroker) -> Iterator[MqttProbe]:
    probe = MqttProbe(broker.url(), client_id=broker.monitor_user)
    assert not probe.connect().is_failure
    probe.subscribe(TOPICS.presence_filter)
    probe.subscribe(TOPICS.heartbeat_filter)
    yield probe
    probe.close()


@pytest.fixture
def simulators() -> Iterator[list[Simulator]]:
    started: list[Simulator] = []
    yield started
    for sim in started:
        sim.close()


def _presence(message: Received) -> tuple[str, dict[str, str]] | None:
    try:
        device_id, kind = TOPICS.parse_device_topic(message.topic)
    except protocol.ProtocolError:
        return None
    if kind is not protocol.MessageKind.PRESENCE:
        return None
    body: dict[str, str] = json.loads(message.payload)
    return device_id, body


def _wait_for_log(sim: Simulator, pattern: re.Pattern[str], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(pattern.findall(sim.log())) < count:
        assert time.monotonic() < deadline, f"wanted {count} x {pattern.pattern}"
        time.sleep(0.05)


def test_a_few_hundred_devices_come_online_and_the_dead_leave_wills(
    broker: TestBroker,
    observer: MqttProbe,
    fleet_prefix: str,
    tmp_path: Path,
    simulators: list[Simulator],
) -> None:
    count, dead = 300, 30
    ids = [f"{fleet_prefix}{i:05d}" for i in range(count)]
    broker.add_devices(ids, PASSWORD)
    sim = Simulator(
        tmp_path,
        broker,
        fleet_prefix,
        *("--devices", str(count), "--interval", "0.5", "--keepalive", "5"),
        *("--die-fraction", str(dead / count), "--fault-after", "1"),
    )
    simulators.append(sim)

    def online(m: Received) -> bool:
        found = _presence(m)
        return found is not None and found[1]["state"] == "online"

    seen = observer.wait_for(online, timeout=30, count=count)
    assert {p[0] for p in map(_presence, seen) if p is not None} == set(ids)

    def will(m: Received) -> bool:
        found = _presence(m)
        return found is not None and found[1].get("reason") == "connection-lost"

    wills = observer.wait_for(will, timeout=20, count=dead)
    _wait_for_log(sim, DIES, dead, timeout=5)
    died = set(DIES.findall(sim.log()))
    assert len(died) == dead
    # Every will names the device and the very session that died; no one else's fired.
    assert {(p[0], p[1]["session"]) for p in map(_presence, wills) if p is not None} == died
    assert re.search(rf"fleet: connected=({count}|{count - dead})/{count}", sim.log())

    sim.proc.send_signal(signal.SIGTERM)
    assert sim.proc.wait(30) == 0

    def shutdown(m: Received) -> bool:
        found = _presence(m)
        return found is not None and found[1].get("reason") == "shutdown"

    shutdowns = observer.wait_for(shutdown, timeout=10, count=count - dead)
    dead_ids = {device for device, _ in died}
    assert {p[0] for p in map(_presence, shutdowns) if p is not None} == set(ids) - dead_ids
    assert observer.matching(will) == wills  # a clean stop fired no wills
    assert f"{count - dead}/{count} shutdowns acknowledged" in sim.log()


def test_muted_devices_stay_connected_and_flapping_devices_change_sessions(
    broker: TestBroker,
    observer: MqttProbe,
    fleet_prefix: str,
    tmp_path: Path,
    simulators: list[Simulator],
) -> None:
    count, interval = 40, 0.3
    ids = [f"{fleet_prefix}{i:05d}" for i in range(count)]
    broker.add_devices(ids, PASSWORD)
    sim = Simulator(
        tmp_path,
        broker,
        fleet_prefix,
        *("--devices", str(count), "--interval", str(interval), "--keepalive", "2"),
        *("--mute-fraction", "0.25", "--flap-fraction", "0.25"),
        *("--fault-after", "1", "--flap-period", "1", "--backoff-cap", "0.5"),
        *("--duration", "5"),
    )
    simulators.append(sim)
    assert sim.proc.wait(30) == 0  # --duration ends the run like SIGTERM would
    stopped_at = time.monotonic()
    log = sim.log()
    muted = set(MUTES.findall(log))
    flapping = {device for device, _ in FLAPS.findall(log)}
    assert len(muted) == 10
    assert len(flapping) == 10
    assert not muted & flapping

    # A flapping device that happened to be between connections at the end had nothing
    # to announce; the simulator reports how many did.
    acked = re.search(r"(\d+)/\d+ shutdowns acknowledged", log)
    assert acked is not None
    assert int(acked.group(1)) >= count - len(flapping)
    observer.wait_for(lambda m: m.payload.endswith(b'"shutdown"}'), count=int(acked.group(1)))
    presence: dict[str, list[dict[str, str]]] = defaultdict(list)
    last_beat: dict[str, float] = {}
    for message in observer.messages:
        device_id, kind = TOPICS.parse_device_topic(message.topic)
        if kind is protocol.MessageKind.PRESENCE:
            presence[device_id].append(json.loads(message.payload))
        else:
            last_beat[device_id] = message.at

    for device_id in muted:
        states = [(p["state"], p.get("reason")) for p in presence[device_id]]
        # Connected all along (keepalive pings kept it so): online, then a clean shutdown.
        assert states == [("online", None), ("offline", "shutdown")]
        # ... but silent for the last seconds of the run (on a slow machine it may have
        # been muted before its first beat).
        assert stopped_at - last_beat.get(device_id, 0.0) > 3 * interval

    for device_id in flapping:
        onlines = [p["session"] for p in presence[device_id] if p["state"] == "online"]
        lost = [p["session"] for p in presence[device_id] if p.get("reason") == "connection-lost"]
        assert len(set(onlines)) >= 2  # came back with a new session
        assert lost  # the broker published the will of the dropped one
        assert set(lost) <= set(onlines)  # wills name sessions that had been online

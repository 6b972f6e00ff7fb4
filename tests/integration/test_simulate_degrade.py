"""``clawbeat simulate --degrade-fraction``: degradation schedules on real connections."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_client import protocol
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

TOPICS = protocol.Topics()
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "fleet-password"
ENDS = re.compile(r"device (\S+) \(([a-z-]+)\): (dies|hangs, still connected|reboots)")


@pytest.fixture
def observer(broker: TestBroker) -> Iterator[MqttProbe]:
    probe = MqttProbe(broker.url(), client_id=broker.monitor_user)
    assert not probe.connect().is_failure
    probe.subscribe(TOPICS.presence_filter)
    probe.subscribe(TOPICS.heartbeat_filter)
    yield probe
    probe.close()


def test_degrading_devices_drain_reboot_and_fail_on_the_wire(
    broker: TestBroker, observer: MqttProbe, device_id: str, tmp_path: Path
) -> None:
    prefix = device_id[:50] + "-"
    count = 8
    broker.add_devices([f"{prefix}{i:05d}" for i in range(count)], PASSWORD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWBEAT_")}
    log_path = tmp_path / "simulate.log"
    # One second of the run is an hour of the schedule: 14 h of degradation in 14 s.
    with log_path.open("wb") as log_file:
        args = [
            *("--broker", f"mqtt://{broker.host}:{broker.port}"),
            *("--prefix", prefix, "--password", PASSWORD, "--seed", "3"),
            *("--devices", str(count), "--interval", "0.5", "--keepalive", "2"),
            *("--degrade-fraction", "1", "--degrade-speed", "3600", "--duration", "14"),
            *("--backoff-cap", "0.5", "--log-level", "INFO"),
        ]
        proc = subprocess.run(
            [sys.executable, "-m", "device_client.cli", "simulate", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            timeout=90,
            check=False,
        )
    log = log_path.read_text(errors="replace")
    print(log)  # shown when the test fails
    assert proc.returncode == 0
    events = ENDS.findall(log)
    profiles = {device: profile for device, profile, _ in events}
    ended = {(d, what) for d, _, what in events if what != "reboots"}
    by_profile: dict[str, set[str]] = defaultdict(set)
    for device, what in ended:
        by_profile[profiles[device]].add(what)
    # Two devices of each profile; each fails the way its profile does.
    assert by_profile == {
        "battery": {"dies"},
        "flaky-link": {"dies"},
        "memory-leak": {"dies"},
        "slowdown": {"hangs, still connected"},
    }
    assert len(ended) == count
    leaky = [d for d, p in profiles.items() if p == "memory-leak"]
    for d in leaky:
        assert sum(1 for e in events if e[0] == d and e[2] == "reboots") >= 2

    # On the wire: the battery devices' heartbeats report a draining battery.
    battery: dict[str, list[float]] = defaultdict(list)
    for message in observer.messages:
        dev, kind = TOPICS.parse_device_topic(message.topic)
        if kind is protocol.MessageKind.HEARTBEAT and profiles.get(dev) == "battery":
            metrics = json.loads(message.payload).get("metrics", {})
            if "battery_pct" in metrics:
                battery[dev].append(metrics["battery_pct"])
    assert len(battery) == 2
    for levels in battery.values():
        assert levels[-1] < 10 < levels[0]

"""What `make run` shows: the monitor's and the simulator's logs, and the broker's."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.transition_log import LOG_EACH_UP_TO, WINDOW
from tests.harness.monitor import MonitorProcess, read_devices, wait_until
from tests.harness.mosquitto import REPO, TestBroker

DEVICES = 60  # three times the per-window budget of per-device lines
PASSWORD = "log-fleet-password"
# The one text format: UTC, milliseconds, Z.
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})Z (DEBUG|INFO|WARNING|ERROR) +\S+: ")
EACH = re.compile(r" INFO +clawbeat\.monitor: device (\S+): new -> \w+ \(first-seen\)$")
SUMMARY = re.compile(r"INFO +clawbeat\.monitor: ([\d,]+) devices: new -> \w+ \(first-seen\)")


def _stamp(line: str) -> float:
    found = LINE.match(line)
    assert found, f"not the shared log format: {line!r}"
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


def _first_seen_logged(log: str) -> tuple[list[float], int]:
    """When each first-seen got a line of its own, and how many the summaries counted."""
    each = [_stamp(line) for line in log.splitlines() if EACH.search(line)]
    summarised = sum(int(m.group(1).replace(",", "")) for m in SUMMARY.finditer(log))
    return each, summarised


def _all_first_seen_logged(log: str) -> bool:
    each, summarised = _first_seen_logged(log)
    return len(each) + summarised == DEVICES


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_connecting_fleet_is_summarised_and_every_log_shares_one_format(
    broker: TestBroker, database_url: str, tmp_path: Path, device_id: str
) -> None:
    prefix = device_id[:50] + "-"
    broker.add_devices([f"{prefix}{i:05d}" for i in range(DEVICES)], PASSWORD)
    monitor = MonitorProcess(broker, database_url, tmp_path / "monitor.log", log_level="INFO")
    sim_log = tmp_path / "simulate.log"
    started = time.time()
    monitor.start()
    with sim_log.open("wb") as out:
        sim = subprocess.Popen(
            [
                sys.executable, "-m", "monitor.cli", "simulate", "--devices", str(DEVICES),
                "--broker", f"mqtt://{broker.host}:{broker.port}", "--prefix", prefix,
                "--password", PASSWORD, "--connect-rate", "1000", "--report-every", "1",
            ],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("CLAWBEAT_")},
        )  # fmt: skip
    try:
        wait_until(
            lambda: len(read_devices(database_url)) == DEVICES, 60, what="every device stored"
        )
        # Lines held back are logged when their window ends (checked every flush).
        wait_until(
            lambda: _all_first_seen_logged(monitor.log_path.read_text()),
            WINDOW * 3,
            what="a line or a count for every first-seen",
        )
        wait_until(lambda: "fleet: connected=" in sim_log.read_text(), 30, what="a fleet line")
    finally:
        sim.terminate()
        sim.wait(30)
        monitor.stop()

    each, summarised = _first_seen_logged(monitor.log_path.read_text())
    assert summarised > 0
    # Within the budget of every window the individual lines span.
    windows = math.floor((max(each) - min(each)) / WINDOW) + 1
    assert len(each) <= LOG_EACH_UP_TO * windows
    # The monitor and the simulator: the same format, both in UTC.
    for path in (monitor.log_path, sim_log):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        assert lines, path
        for line in lines:
            if line.startswith(("Traceback", " ")):
                continue
            assert started - 60 <= _stamp(line) <= time.time() + 60, line
    # Mosquitto, from the project's mosquitto.conf, has nothing to say about its config.
    broker_log = broker.log_path.read_text()
    assert "recommended to replace" not in broker_log
    assert "message_size_limit" not in broker_log

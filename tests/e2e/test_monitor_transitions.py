"""End to end: every transition of a device, through a real Mosquitto and a real database.

Devices are real processes — the SDK's ``clawbeat device`` and ``mosquitto_pub`` — and the
monitor is ``python -m monitor.cli monitor``. What the tests look at is what ops see: the
retained status topics and the ``transitions`` table.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_client import Device
from tests.harness.monitor import (
    MonitorProcess,
    Spawned,
    StatusWatch,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

# Short timings keep the suite fast: a device beating every 0.5 s is late after
# 0.5 + 1 s of silence and stale after 0.5 x 2 + 1 s.
FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 1,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "summary_interval": 1,
}

# Tests whose database plays no special part run on SQLite only, to keep the suite fast.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def monitor(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> Iterator[MonitorProcess]:
    proc = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    proc.start(probe=watch)
    yield proc
    proc.stop()


def _steps(database_url: str, device_id: str) -> list[tuple[str | None, str, str | None]]:
    return [(t.old_state, t.new_state, t.reason) for t in read_transitions(database_url, device_id)]


def _beat(shell: subprocess.Popen[bytes], seq: int, session: str, interval: float = 0.5) -> None:
    assert shell.stdin is not None
    line = json.dumps({"seq": seq, "session": session, "interval": interval})
    shell.stdin.write(line.encode() + b"\n")
    shell.stdin.flush()


def test_every_transition_sdk_and_mosquitto_pub(
    broker: TestBroker,
    database_url: str,
    monitor: MonitorProcess,
    spawned: Spawned,
    watch: StatusWatch,
) -> None:
    sdk, shell_id = "e2e-sdk-1", "e2e-shell-1"
    broker.add_device(sdk)
    broker.add_device(shell_id)

    # --- the SDK device -------------------------------------------------------------
    mark = time.monotonic()
    device = spawned.device(sdk)
    watch.wait_state(sdk, "online", reason="first-seen", after=mark)

    # SIGKILL: the broker publishes the will, the monitor holds it, nothing takes over.
    mark = time.monotonic()
    device.kill()
    device.wait(5)
    status = watch.wait_state(sdk, "offline", reason="connection-lost", after=mark)
    killed_session = status["session"]

    # A new process is a new session: back online.
    mark = time.monotonic()
    device = spawned.device(sdk)
    status = watch.wait_state(sdk, "online", reason="presence-online", after=mark)
    assert status["session"] != killed_session

    # Maintenance through the CLI; the monitor polls the config version every second.
    mark = time.monotonic()
    monitor.cli("devices", "maintenance", sdk, "on")
    watch.wait_state(sdk, "maintenance", reason="maintenance-started", after=mark)
    mark = time.monotonic()
    monitor.cli("devices", "maintenance", sdk, "off")
    watch.wait_state(sdk, "online", reason="maintenance-ended", after=mark)

    # A clean stop (SIGTERM) announces shutdown.
    mark = time.monotonic()
    device.send_signal(signal.SIGTERM)
    assert device.wait(10) == 0
    watch.wait_state(sdk, "offline", reason="shutdown", after=mark)

    # --- mosquitto_pub: one connection with a will, heartbeats written line by line ----
    mark = time.monotonic()
    shell = spawned.shell_device(shell_id, "shell-1")
    _beat(shell, 0, "shell-1")
    watch.wait_state(shell_id, "online", reason="first-seen", after=mark)
    for seq in (1, 2):
        time.sleep(0.4)  # pacing, not waiting: the device's own rhythm
        _beat(shell, seq, "shell-1")
    # Then it stops beating but stays connected: late, then stale.
    watch.wait_state(shell_id, "late", reason="missed-heartbeats", after=mark)
    watch.wait_state(shell_id, "stale", reason="stopped-beating", after=mark)
    # One more heartbeat brings it back.
    mark = time.monotonic()
    _beat(shell, 3, "shell-1")
    watch.wait_state(shell_id, "online", reason="heartbeat", after=mark)
    # Its connection dies: the will it set on the command line marks it offline.
    mark = time.monotonic()
    shell.kill()
    shell.wait(5)
    watch.wait_state(shell_id, "offline", reason="connection-lost", after=mark)
    # A single heartbeat from a new session (one-shot mosquitto_pub, no will): online.
    mark = time.monotonic()
    spawned.publish(
        shell_id, "heartbeat", json.dumps({"seq": 0, "session": "shell-2", "interval": 0.5})
    )
    watch.wait_state(shell_id, "online", reason="heartbeat", after=mark)
    watch.wait_state(shell_id, "stale", reason="stopped-beating", after=mark)

    # --- lost: the operator shortens lost_after for the default class at run time -------
    mark = time.monotonic()
    monitor.cli(
        "classes", "set", "default", "--grace", "1", "--missed-limit", "2", "--lost-after", "3"
    )
    watch.wait_state(shell_id, "lost", reason="gone", after=mark)
    watch.wait_state(sdk, "lost", reason="gone", after=mark)

    # --- the history in the database, exactly ------------------------------------------
    def persisted() -> bool:
        return _steps(database_url, sdk)[-1:] == [("offline", "lost", "gone")] and _steps(
            database_url, shell_id
        )[-1:] == [("stale", "lost", "gone")]

    wait_until(persisted, 5, what="lost transitions in the database")
    assert _steps(database_url, sdk) == [
        (None, "online", "first-seen"),
        ("online", "offline", "connection-lost"),
        ("offline", "online", "presence-online"),
        ("online", "maintenance", "maintenance-started"),
        ("maintenance", "online", "maintenance-ended"),
        ("online", "offline", "shutdown"),
        ("offline", "lost", "gone"),
    ]
    assert _steps(database_url, shell_id) == [
        (None, "online", "first-seen"),
        ("online", "late", "missed-heartbeats"),
        ("late", "stale", "stopped-beating"),
        ("stale", "online", "heartbeat"),
        ("online", "offline", "connection-lost"),
        ("offline", "online", "heartbeat"),
        ("online", "late", "missed-heartbeats"),
        ("late", "stale", "stopped-beating"),
        ("stale", "lost", "gone"),
    ]
    # Every transition row names the session it happened in; timestamps never go back.
    for device_id in (sdk, shell_id):
        rows = read_transitions(database_url, device_id)
        assert [r.at for r in rows] == sorted(r.at for r in rows)
    assert [t.session for t in read_transitions(database_url, shell_id)][-4:] == ["shell-2"] * 4

    # The devices table (written behind, once per flush window) agrees with the status
    # topics.
    def rows_agree() -> bool:
        devices = read_devices(database_url)
        return all(
            devices[d].state == (watch.latest(d) or {}).get("state") == "lost"
            for d in (sdk, shell_id)
        )

    wait_until(rows_agree, 5, what="devices rows to match the status topics")
    assert monitor.running()


# --- sessions: a quick reconnect is not marked offline by its old session's will ---------


def _raw_device(
    broker: TestBroker, device_id: str, session: str, *, announce: bool = True
) -> MqttProbe:
    """A paho connection with the protocol's will for ``session``, announced online."""
    client = MqttProbe(broker.url(device_id), client_id=device_id, keepalive=5)
    client.client.will_set(
        f"clawbeat/v1/devices/{device_id}/presence",
        json.dumps({"state": "offline", "session": session, "reason": "connection-lost"}),
        qos=1,
        retain=True,
    )
    client.connect()
    if announce:
        _presence(client, device_id, "online", session)
    return client


def _presence(client: MqttProbe, device_id: str, state: str, session: str) -> None:
    body = {"state": state, "session": session}
    if state == "offline":
        body["reason"] = "connection-lost"
    client.publish(f"clawbeat/v1/devices/{device_id}/presence", json.dumps(body), retain=True)


def _raw_beat(client: MqttProbe, device_id: str, session: str, seq: int) -> None:
    # interval 5: the device is never late during this test, whatever the pauses.
    client.publish(
        f"clawbeat/v1/devices/{device_id}/heartbeat",
        json.dumps({"seq": seq, "session": session, "interval": 5}),
        retain=True,
    )


def _takeover(
    old: MqttProbe, broker: TestBroker, device_id: str, session: str, *, announce: bool
) -> MqttProbe:
    # Stop the old client's network loop first so paho does not reconnect it and take the
    # connection back. The broker closes the old connection when the new one logs in with
    # the same client id, and publishes the old connection's will.
    old.client.loop_stop()
    return _raw_device(broker, device_id, session, announce=announce)


@SQLITE_ONLY
def test_quick_reconnect_is_not_marked_offline_by_the_old_will(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    dev = "e2e-takeover-1"
    broker.add_device(dev)
    clients: list[MqttProbe] = []
    try:
        a = _raw_device(broker, dev, "S1")
        clients.append(a)
        _raw_beat(a, dev, "S1", 0)
        watch.wait_state(dev, "online", reason="first-seen")

        # Control: a takeover whose new connection stays silent for longer than
        # will_hold. The will the broker publishes for S1 marks the device offline, which
        # shows the broker really does publish the old will on a takeover.
        mark = time.monotonic()
        b = _takeover(a, broker, dev, "S2", announce=False)
        clients.append(b)
        status = watch.wait_state(dev, "offline", reason="connection-lost", after=mark)
        assert status["session"] == "S1"
        mark = time.monotonic()
        _presence(b, dev, "online", "S2")
        watch.wait_state(dev, "online", reason="presence-online", after=mark)
        history = _steps(database_url, dev)

        # The real case: S3 takes over and announces itself at once. The broker publishes
        # S2's will around the same time, possibly first; the monitor must not mark the
        # device offline.
        c = _takeover(b, broker, dev, "S3", announce=True)
        clients.append(c)
        # A will that comes even later (after S3 is up) names an old session: ignored,
        # and so is a heartbeat from an old session.
        _presence(c, dev, "offline", "S2")
        _raw_beat(c, dev, "S2", 99)
        # Beat on in S3 for longer than will_hold (0.5 s): the monitor has had every
        # chance to turn a held will into an offline.
        hold_over = time.monotonic() + 1.5
        seq = 0
        while time.monotonic() < hold_over:
            _raw_beat(c, dev, "S3", seq)
            seq += 1
            time.sleep(0.25)  # pacing: the device's own rhythm
        last = seq - 1

        def caught_up() -> bool:
            row = read_devices(database_url).get(dev)
            return row is not None and row.session == "S3" and row.last_seq == last

        wait_until(caught_up, 5, what="the S3 heartbeats in the devices table")
        assert _steps(database_url, dev) == history  # no transition at all
        assert history == [
            (None, "online", "first-seen"),
            ("online", "offline", "connection-lost"),
            ("offline", "online", "presence-online"),
        ]
        latest = watch.latest(dev)
        assert latest is not None
        # No new state, but the status names the session now in force.
        assert (latest["state"], latest["reason"], latest["session"]) == (
            "online",
            "presence-online",
            "S3",
        )
        assert monitor.running()
    finally:
        for client in clients:
            client.close()


# --- ops: an interval override reaches a running SDK device -------------------------------


@SQLITE_ONLY
def test_set_interval_reaches_a_running_sdk_device(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    dev = "e2e-interval-1"
    broker.add_device(dev)
    with Device(device_id=dev, broker=broker.url(dev), interval=0.5, keepalive=5) as device:
        watch.wait_state(dev, "online", reason="first-seen")
        wait_until(lambda: dev in read_devices(database_url), 5, what="the device row")

        monitor.cli("devices", "set-interval", dev, "2")
        # Monitor -> retained config topic -> SDK: the device applies it at once.
        wait_until(lambda: device.interval == 2, 5, what="the device to apply interval 2")
        applied = time.monotonic()

        # Its heartbeats now announce 2 s, and it beats every 2 s, well past the
        # 0.5 + 1 s a device judged by 0.5 s would be late after.
        def announces_2() -> int | None:
            row = read_devices(database_url)[dev]
            return row.last_seq if row.announced_interval == 2 else None

        first = wait_until(announces_2, 5, what="a heartbeat announcing interval 2")
        wait_until(lambda: (announces_2() or 0) >= first + 2, 8, what="two more heartbeats at 2 s")
        assert time.monotonic() - applied > 3  # the beats really were ~2 s apart
        row = read_devices(database_url)[dev]
        assert row.interval_override == 2
        # Judged by 2 s: never late.
        assert _steps(database_url, dev) == [(None, "online", "first-seen")]
        assert (watch.latest(dev) or {}).get("state") == "online"

    # Restarted (a new process would be the same), the device gets the override from the
    # retained config topic as it connects, whatever interval it was built with.
    with Device(device_id=dev, broker=broker.url(dev), interval=0.5, keepalive=5) as device:
        wait_until(lambda: device.interval == 2, 5, what="the retained config to apply")
    assert monitor.running()


# --- start-up: refuse a database that was never migrated ----------------------------------


def test_monitor_refuses_an_unmigrated_database(
    broker: TestBroker, empty_database_url: str, tmp_path: Path
) -> None:
    proc = MonitorProcess(broker, empty_database_url, tmp_path / "monitor.log", **FAST)
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "monitor"],
        env=proc.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "clawbeat db upgrade" in output, output
    assert "Traceback" not in output, output

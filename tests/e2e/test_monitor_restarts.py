"""End to end: the monitor, the broker and the monitor again go away under a healthy fleet.

Nothing a healthy fleet does should become a verdict because the monitor restarted or
lost the broker; a device that really died meanwhile is reported exactly once.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.monitor import (
    MonitorProcess,
    Spawned,
    StatusWatch,
    StoredTransition,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 2,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "summary_interval": 1,
}
ROOT = "clawbeat/v1"
FLEET_PASSWORD = "fleet-secret"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _fleet(broker: TestBroker, prefix: str, count: int) -> list[str]:
    ids = [f"{prefix}{i:05d}" for i in range(count)]
    broker.add_devices(ids, FLEET_PASSWORD)
    return ids


def _all_online(database_url: str, ids: list[str]) -> bool:
    devices = read_devices(database_url)
    return all(i in devices and devices[i].state == "online" for i in ids)


def _since(database_url: str, at: datetime) -> list[StoredTransition]:
    return [t for t in read_transitions(database_url) if t.at >= at]


def _presence_after(watch: StatusWatch, state: str, wall: float) -> None:
    topic = f"{ROOT}/monitor/presence"

    def match(body: dict[str, str]) -> bool:
        if body["state"] != state or body["since"] is None:  # the will's since is null
            return False
        since = datetime.fromisoformat(body["since"].replace("Z", "+00:00")).timestamp()
        return since >= wall

    watch.wait_for(lambda m: m.topic == topic and match(json.loads(m.payload)), 20)


@SQLITE_ONLY
def test_monitor_sigkill_and_restart_under_a_healthy_fleet(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    spawned: Spawned,
    watch: StatusWatch,
) -> None:
    fleet = _fleet(broker, "e2e-kill-", 50)
    victim = "e2e-victim-1"
    broker.add_device(victim)
    monitor = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    monitor.start(probe=watch)
    try:
        spawned.simulate(prefix="e2e-kill-", count=50, password=FLEET_PASSWORD)
        victim_proc = spawned.device(victim)
        wait_until(lambda: _all_online(database_url, [*fleet, victim]), 20, what="fleet online")

        monitor.kill()
        # While the monitor is down the victim dies: the broker keeps its will, retained.
        victim_proc.kill()
        victim_proc.wait(5)
        time.sleep(3)  # the outage itself: longer than any device's late/stale deadline
        restarted = datetime.now(UTC)
        mark = time.monotonic()
        monitor.start(probe=watch)

        # The retained will is held through warm-up, then reported once.
        watch.wait_state(victim, "offline", reason="connection-lost", after=mark)
        # Give any false verdict time to appear: a late for a device the monitor failed
        # to re-arm would come interval + grace (1.5 s) after warm-up.
        time.sleep(2.5)
        # Every fleet device beat after the restart and the monitor recorded it.
        devices = read_devices(database_url)
        assert all((devices[i].last_seen or restarted) > restarted for i in fleet)
        after = _since(database_url, restarted)
        assert [(t.device_id, t.old_state, t.new_state, t.reason) for t in after] == [
            (victim, "online", "offline", "connection-lost")
        ]
        victim_offline = [
            t for t in read_transitions(database_url, victim) if t.new_state == "offline"
        ]
        assert len(victim_offline) == 1
        assert all(devices[i].state == "online" for i in fleet)
        assert monitor.running()
    finally:
        monitor.stop()


class _HandDevice:
    """A device the test reconnects by hand: paho, a will per session, a heartbeat thread."""

    def __init__(self, broker: TestBroker, device_id: str, *, interval: float) -> None:
        self.broker = broker
        self.device_id = device_id
        self.interval = interval
        self.topic = f"{ROOT}/devices/{device_id}"
        self.probe: MqttProbe | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self, session: str) -> None:
        probe = MqttProbe(self.broker.url(self.device_id), client_id=self.device_id, keepalive=5)
        will = {"state": "offline", "session": session, "reason": "connection-lost"}
        probe.client.will_set(f"{self.topic}/presence", json.dumps(will), 1, retain=True)
        probe.connect()
        presence = {"state": "online", "session": session}
        probe.publish(f"{self.topic}/presence", json.dumps(presence), retain=True)
        self.probe = probe
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, args=(probe, session), daemon=True)
        self._thread.start()

    def _beat(self, probe: MqttProbe, session: str) -> None:
        seq = 0
        while not self._stop.is_set():
            body = {"seq": seq, "session": session, "interval": self.interval}
            probe.client.publish(f"{self.topic}/heartbeat", json.dumps(body), qos=1, retain=True)
            seq += 1
            self._stop.wait(self.interval)

    def freeze(self) -> None:
        """Stop beating and stop paho's loop: the connection stays open, never reconnects."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.probe is not None:
            self.probe.client.loop_stop()

    def close(self) -> None:
        self.freeze()
        if self.probe is not None:
            self.probe.client.disconnect()


@SQLITE_ONLY
def test_broker_restart_reconnects_without_false_verdicts(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    spawned: Spawned,
    watch: StatusWatch,
) -> None:
    fleet = _fleet(broker, "e2e-brk-", 30)
    slow = "e2e-brk-slow"
    broker.add_device(slow)
    # A broker that stops publishes the will of every device connected to it, and the
    # monitor's resubscription replays them (retained). Devices back off (capped at 1 s
    # here) before reconnecting; the slow one comes back later than the will hold, but
    # within interval + grace: none of them may be called offline.
    settings = {**FAST, "grace": 4}
    window = settings["default_interval"] + settings["grace"]
    monitor = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **settings)
    monitor.start(probe=watch)
    hand = _HandDevice(broker, slow, interval=0.5)
    try:
        spawned.simulate(prefix="e2e-brk-", count=30, password=FLEET_PASSWORD)
        hand.connect("slow-1")
        wait_until(lambda: _all_online(database_url, [*fleet, slow]), 20, what="fleet online")
        sessions = {i: d.session for i, d in read_devices(database_url).items()}

        restarted = datetime.now(UTC)
        hand.freeze()
        broker.restart()

        # The monitor reconnects by itself and says it is online again.
        _presence_after(watch, "online", restarted.timestamp())
        # Three times the will hold (0.5 s) after the monitor is back; interval + grace
        # (5 s) leaves the rest as margin for a loaded machine.
        time.sleep(3 * settings["will_hold"])
        hand.connect("slow-2")

        # Every device reconnects (a new session each) and the monitor hears it.
        def reconnected() -> bool:
            devices = read_devices(database_url)
            return all(devices[i].session != sessions[i] for i in [*fleet, slow])

        wait_until(reconnected, 20, what="every device on a new session")
        # Time for a false verdict to show: interval + grace after the last reconnect.
        time.sleep(window + 1)
        assert _since(database_url, restarted) == []
        assert all(d.state == "online" for d in read_devices(database_url).values())
        assert monitor.running()
        assert monitor.log_path.read_text().count("connected to broker") >= 2
    finally:
        hand.close()
        monitor.stop()


def test_sigterm_flushes_state_and_publishes_monitor_offline(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: StatusWatch,
) -> None:
    # A 30 s flush window: any device row in the database after this test was written by
    # the shutdown flush.
    monitor = MonitorProcess(
        broker,
        database_url,
        tmp_path / "monitor.log",
        **{**FAST, "flush_interval": 30},
    )
    dev, marker = "e2e-term-1", "e2e-term-marker"
    broker.add_devices([dev, marker], "term-secret")
    monitor.start(probe=watch)
    clients: list[MqttProbe] = []
    try:
        client = MqttProbe(broker.url(dev), client_id=dev)
        client.connect()
        clients.append(client)
        for seq in range(6):
            body = {"seq": seq, "session": "t1", "interval": 0.5}
            client.publish(f"{ROOT}/devices/{dev}/heartbeat", json.dumps(body), retain=True)
            time.sleep(0.2)  # pacing: the device's rhythm
        # The marker beats after the last heartbeat; once the monitor reports it, it has
        # handled heartbeat 5 too (the broker delivers to the monitor in order).
        mark_client = MqttProbe(broker.url(marker), client_id=marker)
        mark_client.connect()
        clients.append(mark_client)
        body = {"seq": 0, "session": "m1", "interval": 0.5}
        mark_client.publish(f"{ROOT}/devices/{marker}/heartbeat", json.dumps(body))
        watch.wait_state(marker, "online")
        # Transitions are committed promptly; device rows wait for the flush window.
        wait_until(
            lambda: {t.device_id for t in read_transitions(database_url)} == {dev, marker},
            5,
            what="the first transitions",
        )
        assert read_devices(database_url) == {}

        stopped = time.time()
        assert monitor.terminate() == 0, monitor.log_tail()

        # Its retained presence is now offline: a new subscriber sees it.
        later = MqttProbe(broker.url(broker.ops_user), client_id=broker.ops_user)
        watch.close()
        later.connect()
        clients.append(later)
        later.subscribe(f"{ROOT}/monitor/presence")
        [retained] = later.wait_for(lambda m: m.retain, 5)
        assert json.loads(retained.payload)["state"] == "offline"

        devices = read_devices(database_url)
        assert set(devices) == {dev, marker}
        row = devices[dev]
        assert (row.state, row.session, row.last_seq) == ("online", "t1", 5)
        assert row.last_seen is not None
        assert stopped - 3 < row.last_seen.timestamp() <= stopped
        assert "stopped" in monitor.log_tail()
    finally:
        for c in clients:
            c.close()
        monitor.stop()


@SQLITE_ONLY
def test_device_heard_at_start_that_falls_silent_is_judged_during_warmup(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: StatusWatch,
) -> None:
    # A long warm-up (as with a slow device class) must not shelter a device the monitor
    # has heard since it started: it goes late, then stale, on its own deadlines.
    warmup = 60.0
    monitor = MonitorProcess(
        broker, database_url, tmp_path / "monitor.log", **{**FAST, "warmup": warmup}
    )
    dev = "e2e-warm-silent-1"
    broker.add_device(dev)
    started = time.monotonic()
    monitor.start(probe=watch)
    client = MqttProbe(broker.url(dev), client_id=dev, keepalive=5)
    try:
        client.connect()
        for seq in range(3):
            body = {"seq": seq, "session": "w1", "interval": 1}
            client.publish(f"{ROOT}/devices/{dev}/heartbeat", json.dumps(body), retain=True)
            time.sleep(0.3)  # pacing: the device's rhythm
        watch.wait_state(dev, "online", reason="first-seen")
        # Then silence, while still connected. Late after interval + grace (2 s), stale
        # after interval x missed_limit + grace (3 s): both long before warm-up ends.
        left = warmup - (time.monotonic() - started)
        watch.wait_state(dev, "late", reason="missed-heartbeats", timeout=left)
        left = warmup - (time.monotonic() - started)
        watch.wait_state(dev, "stale", reason="stopped-beating", timeout=left)
        wait_until(lambda: len(read_transitions(database_url, dev)) >= 3, 5, what="transition rows")
        assert [
            (t.old_state, t.new_state, t.reason) for t in read_transitions(database_url, dev)
        ] == [
            (None, "online", "first-seen"),
            ("online", "late", "missed-heartbeats"),
            ("late", "stale", "stopped-beating"),
        ]
        assert monitor.running()
    finally:
        client.close()
        monitor.stop()

"""The device SDK and ``clawbeat device`` against a real Mosquitto.

Observed the way the monitor observes: a paho subscriber logged in as the monitor user.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_client import ConnectRefused, Device, protocol
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe, Received

TOPICS = protocol.Topics()
REPO = Path(__file__).resolve().parents[2]


def _json(message: Received) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message.payload)
    return body


def _is(message: Received, topic: str, **fields: Any) -> bool:
    if message.topic != topic or not message.payload:
        return False
    body = _json(message)
    return all(body.get(k) == v for k, v in fields.items())


class DeviceProcess:
    """``python -m device_client.cli device ...`` with its log in a file."""

    def __init__(self, tmp_path: Path, device_id: str, broker_url: str, *args: str) -> None:
        self.log_path = tmp_path / f"{device_id}.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name in list(env):
            if name.startswith("CLAWBEAT_"):
                del env[name]  # the test says everything explicitly
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "device_client.cli",
                "device",
                "--id",
                device_id,
                "--broker",
                broker_url,
                "--log-level",
                "DEBUG",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def monitor(broker: TestBroker) -> Iterator[MqttProbe]:
    probe = MqttProbe(broker.url(), client_id=broker.monitor_user)
    assert not probe.connect().is_failure
    probe.subscribe(f"{TOPICS.root}/devices/#")
    yield probe
    probe.close()


@pytest.fixture
def processes() -> Iterator[list[DeviceProcess]]:
    started: list[DeviceProcess] = []
    yield started
    for proc in started:
        proc.close()
        # Captured output is shown for failing tests only: the device's side of the story.
        print(f"--- {proc.log_path.name} ---\n{proc.log()}")


def _start(
    processes: list[DeviceProcess],
    tmp_path: Path,
    broker: TestBroker,
    device_id: str,
    *args: str,
) -> DeviceProcess:
    password = broker.add_device(device_id)
    proc = DeviceProcess(tmp_path, device_id, broker.url(device_id, password), *args)
    processes.append(proc)
    return proc


def _online(monitor: MqttProbe, device_id: str, timeout: float = 10.0) -> str:
    """Wait for presence online; return its session."""
    topic = TOPICS.presence(device_id)
    found = monitor.wait_for(lambda m: _is(m, topic, state="online"), timeout)
    session: str = _json(found[-1])["session"]
    return session


def _new_online(probe: MqttProbe, device_id: str, *old_sessions: str) -> str:
    """Wait for presence online naming a session other than ``old_sessions``."""
    topic = TOPICS.presence(device_id)
    found = probe.wait_for(
        lambda m: _is(m, topic, state="online") and _json(m)["session"] not in old_sessions,
        timeout=15,
    )
    session: str = _json(found[0])["session"]
    return session


def _heartbeats(monitor: MqttProbe, device_id: str, session: str) -> list[dict[str, Any]]:
    topic = TOPICS.heartbeat(device_id)
    return [_json(m) for m in monitor.matching(lambda m: _is(m, topic, session=session))]


# -- the device process ------------------------------------------------------------------------


def test_device_process_publishes_online_and_retained_heartbeats_with_increasing_seq(
    broker: TestBroker,
    monitor: MqttProbe,
    device_id: str,
    tmp_path: Path,
    processes: list[DeviceProcess],
) -> None:
    _start(processes, tmp_path, broker, device_id, "--interval", "0.2", "--fw", "9.9.9")
    session = _online(monitor, device_id)
    hb_topic = TOPICS.heartbeat(device_id)
    monitor.wait_for(lambda m: _is(m, hb_topic, session=session), timeout=10, count=6)
    beats = _heartbeats(monitor, device_id, session)
    seqs = [b["seq"] for b in beats]
    assert seqs[:6] == [0, 1, 2, 3, 4, 5]
    for beat in beats:
        hb = protocol.decode_heartbeat(json.dumps(beat))
        assert (hb.interval, hb.fw) == (0.2, "9.9.9")
        assert hb.ts is not None
        assert abs(hb.ts - time.time()) < 60
        assert hb.uptime is not None
    # Online came first (the presence topic's first live message, before any heartbeat).
    first = next(m for m in monitor.messages if m.topic.endswith(device_id + "/heartbeat"))
    online = next(m for m in monitor.messages if _is(m, TOPICS.presence(device_id)))
    assert online.at <= first.at

    # Retained: a subscriber arriving later gets the latest heartbeat and presence at once.
    late = MqttProbe(broker.url(), client_id=broker.monitor_user + "-late")
    try:
        late.connect()
        late.subscribe(f"{TOPICS.root}/devices/{device_id}/#")
        retained = late.wait_for(lambda m: m.retain and m.topic == hb_topic)
        assert _json(retained[0])["session"] == session
        late.wait_for(lambda m: m.retain and _is(m, TOPICS.presence(device_id), state="online"))
    finally:
        late.close()


def test_sigkill_makes_the_broker_publish_the_will_within_one_and_a_half_keepalives(
    broker: TestBroker,
    monitor: MqttProbe,
    device_id: str,
    tmp_path: Path,
    processes: list[DeviceProcess],
) -> None:
    keepalive = 2
    proc = _start(
        processes, tmp_path, broker, device_id, "--interval", "0.5", "--keepalive", str(keepalive)
    )
    session = _online(monitor, device_id)
    topic = TOPICS.presence(device_id)
    killed_at = time.monotonic()
    proc.signal(signal.SIGKILL)
    will = monitor.wait_for(lambda m: _is(m, topic, state="offline"), timeout=3 * keepalive)[0]
    assert _json(will) == {"state": "offline", "session": session, "reason": "connection-lost"}
    assert will.at - killed_at <= 1.5 * keepalive


def test_sigterm_publishes_shutdown_and_exits_cleanly(
    broker: TestBroker,
    monitor: MqttProbe,
    device_id: str,
    tmp_path: Path,
    processes: list[DeviceProcess],
) -> None:
    proc = _start(processes, tmp_path, broker, device_id, "--interval", "0.3")
    session = _online(monitor, device_id)
    hb_topic = TOPICS.heartbeat(device_id)
    monitor.wait_for(lambda m: _is(m, hb_topic, session=session), count=2)
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    topic = TOPICS.presence(device_id)
    shutdown = monitor.wait_for(lambda m: _is(m, topic, state="offline"))
    assert _json(shutdown[0]) == {"state": "offline", "session": session, "reason": "shutdown"}
    # The clean DISCONNECT discarded the will. The process is gone, so a will would have
    # been published by now; give the broker a moment to prove it was not.
    time.sleep(0.5)
    offline = [_json(m) for m in monitor.matching(lambda m: _is(m, topic, state="offline"))]
    assert [o["reason"] for o in offline] == ["shutdown"]
    assert "SIGTERM received" in proc.log()


def test_device_reconnects_after_a_broker_restart_with_a_new_session(
    broker: TestBroker,
    device_id: str,
    tmp_path: Path,
    processes: list[DeviceProcess],
) -> None:
    proc = _start(
        processes,
        tmp_path,
        broker,
        device_id,
        *("--interval", "0.3", "--keepalive", "2", "--backoff-base", "0.2"),
        *("--backoff-cap", "1"),
    )
    before = MqttProbe(broker.url(), client_id=broker.monitor_user)
    before.connect()
    before.subscribe(f"{TOPICS.root}/devices/{device_id}/#")
    old_session = _online(before, device_id)
    before.close()

    broker.restart()

    after = MqttProbe(broker.url(), client_id=broker.monitor_user)
    try:
        after.connect()
        after.subscribe(f"{TOPICS.root}/devices/{device_id}/#")
        new_session = _new_online(after, device_id, old_session)
        hb_topic = TOPICS.heartbeat(device_id)
        after.wait_for(lambda m: _is(m, hb_topic, session=new_session), count=3)
        seqs = [b["seq"] for b in _heartbeats(after, device_id, new_session)]
        # The device may have reconnected before this probe subscribed, so the first one
        # seen can be a retained replay of seq 0, 1, ...; from there on, no gaps.
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    finally:
        after.close()
    assert proc.proc.poll() is None
    assert "lost its connection" in proc.log()

    # A broker that stays down a while: the device keeps retrying, backing off, and is
    # back with yet another session once the broker is.
    broker.stop()
    deadline = time.monotonic() + 10
    while proc.log().count("cannot connect") < 3:
        assert time.monotonic() < deadline, proc.log()
        time.sleep(0.05)
    broker.start()
    again = MqttProbe(broker.url(), client_id=broker.monitor_user)
    try:
        again.connect()
        again.subscribe(f"{TOPICS.root}/devices/{device_id}/#")
        _new_online(again, device_id, old_session, new_session)
    finally:
        again.close()


def test_retained_config_changes_the_interval_within_one_beat(
    broker: TestBroker,
    monitor: MqttProbe,
    device_id: str,
    tmp_path: Path,
    processes: list[DeviceProcess],
) -> None:
    _start(processes, tmp_path, broker, device_id, "--interval", "1")
    session = _online(monitor, device_id)
    hb_topic = TOPICS.heartbeat(device_id)
    monitor.wait_for(lambda m: _is(m, hb_topic, session=session, interval=1.0))

    monitor.publish(TOPICS.config(device_id), b'{"interval": 0.2}', retain=True)
    published_at = time.monotonic()
    fast = monitor.wait_for(lambda m: _is(m, hb_topic, interval=0.2), timeout=5, count=6)
    # The first heartbeat at the new interval came within one (old) beat, and the next
    # ones are 0.2 s apart, not 1 s.
    assert fast[0].at - published_at <= 1.0 + 0.3
    assert fast[5].at - fast[0].at < 5 * 0.2 + 0.5
    # Within one beat also holds when it gets longer: the next beat reports it.
    monitor.publish(TOPICS.config(device_id), b'{"interval": 5}', retain=True)
    published_at = time.monotonic()
    slow = monitor.wait_for(lambda m: _is(m, hb_topic, interval=5.0), timeout=5)
    assert slow[0].at - published_at <= 0.2 + 0.3


def test_config_retained_while_offline_is_applied_on_connect(
    broker: TestBroker,
    monitor: MqttProbe,
    device_id: str,
    tmp_path: Path,
    processes: list[DeviceProcess],
) -> None:
    broker.add_device(device_id)
    monitor.publish(TOPICS.config(device_id), b'{"interval": 0.25}', retain=True)
    _start(processes, tmp_path, broker, device_id, "--interval", "30")
    session = _online(monitor, device_id)
    hb_topic = TOPICS.heartbeat(device_id)
    beats = monitor.wait_for(lambda m: _is(m, hb_topic, session=session), timeout=5, count=4)
    assert [_json(b)["interval"] for b in beats[1:4]] == [0.25, 0.25, 0.25]


def test_refused_login_exits_2_with_a_clear_message(
    broker: TestBroker, device_id: str, tmp_path: Path, processes: list[DeviceProcess]
) -> None:
    broker.add_device(device_id, "right-password")
    proc = DeviceProcess(tmp_path, device_id, broker.url(device_id, "wrong-password"))
    processes.append(proc)
    assert proc.wait() == 2
    assert f"broker refused device {device_id!r}" in proc.log()
    assert "wrong-password" not in proc.log()


# -- the SDK in-process -------------------------------------------------------------------------


def _device(broker: TestBroker, device_id: str, **kwargs: Any) -> Device:
    password = broker.add_device(device_id)
    kwargs.setdefault("interval", 0.2)
    kwargs.setdefault("keepalive", 5)
    return Device(device_id=device_id, broker=broker.url(device_id, password), **kwargs)


def test_metrics_callback_errors_never_stop_heartbeats(
    broker: TestBroker,
    monitor: MqttProbe,
    device_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def metrics() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls % 2 == 0:
            raise RuntimeError("sensor on fire")
        if calls % 3 == 0:
            return {"not-json": object()}
        return {"calls": calls}

    caplog.set_level(logging.WARNING, logger="clawbeat.device")
    device = _device(broker, device_id, metrics=metrics)
    with device:
        assert device.wait_connected(5)
        session = device.session
        assert session is not None
        hb_topic = TOPICS.heartbeat(device_id)
        beats = monitor.wait_for(lambda m: _is(m, hb_topic, session=session), count=8)
    bodies = [_json(b) for b in beats]
    assert [b["seq"] for b in bodies[:8]] == list(range(8))
    with_metrics = [b for b in bodies if "metrics" in b]
    assert with_metrics
    assert all(b["metrics"] == {"calls": b["seq"] + 1} for b in with_metrics)
    assert len(with_metrics) < len(bodies)  # the failing calls went out without metrics
    assert "metrics callback failed" in caplog.text
    assert "sensor on fire" in caplog.text


def test_malformed_config_is_logged_and_ignored(
    broker: TestBroker,
    monitor: MqttProbe,
    device_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="clawbeat.device")
    with _device(broker, device_id, interval=0.3) as device:
        assert device.wait_connected(5)
        monitor.publish(TOPICS.config(device_id), b'{"interval": "soon"}', retain=True)
        monitor.publish(TOPICS.config(device_id), b"\x00garbage", retain=True)
        hb_topic = TOPICS.heartbeat(device_id)
        count = len(monitor.matching(lambda m: m.topic == hb_topic))
        monitor.wait_for(lambda m: _is(m, hb_topic, interval=0.3), count=count + 3)
        assert device.interval == 0.3
        assert device.connected
    assert "ignored a malformed config message" in caplog.text


def test_start_with_the_broker_down_does_not_raise_and_connects_later(
    broker: TestBroker, monitor: MqttProbe, device_id: str
) -> None:
    device = _device(broker, device_id, backoff_base=0.1, backoff_cap=0.5)
    monitor.close()
    broker.stop()
    started = time.monotonic()
    device.start()
    try:
        assert time.monotonic() - started < 5
        assert not device.connected
        broker.start()
        assert device.wait_connected(10)
        probe = MqttProbe(broker.url(), client_id=broker.monitor_user)
        try:
            probe.connect()
            probe.subscribe(TOPICS.heartbeat(device_id))
            probe.wait_for(lambda m: _is(m, TOPICS.heartbeat(device_id), session=device.session))
        finally:
            probe.close()
    finally:
        device.stop()


def test_start_raises_for_a_refused_login(broker: TestBroker, device_id: str) -> None:
    broker.add_device(device_id, "right-password")
    device = Device(
        device_id=device_id, broker=broker.url(device_id, "right-password"), password="wrong"
    )
    with pytest.raises(ConnectRefused) as info:
        device.start()
    assert info.value.device_id == device_id
    assert info.value.username == device_id
    assert "wrong" not in str(info.value)
    assert not device.connected
    assert device.stop() is False  # harmless after the failed start


def test_context_manager_stop_is_acknowledged_and_sends_shutdown(
    broker: TestBroker, monitor: MqttProbe, device_id: str
) -> None:
    device = _device(broker, device_id)
    with device:
        assert device.wait_connected(5)
        session = device.session
    assert not device.connected
    assert device.stop() is True  # already stopped: reports the first stop's outcome
    topic = TOPICS.presence(device_id)
    shutdown = monitor.wait_for(lambda m: _is(m, topic, state="offline"))
    assert _json(shutdown[0])["session"] == session
    assert _json(shutdown[0])["reason"] == "shutdown"


def test_tls_with_the_dev_ca(broker: TestBroker, monitor: MqttProbe, device_id: str) -> None:
    password = broker.add_device(device_id)
    device = Device(
        device_id=device_id,
        broker=broker.url(device_id, password, tls=True),
        tls_ca=broker.ca_file,
        interval=0.2,
    )
    with device:
        assert device.wait_connected(5)
        topic = TOPICS.heartbeat(device_id)
        monitor.wait_for(lambda m: _is(m, topic, session=device.session), count=3)


def test_stop_from_another_thread_while_beating(
    broker: TestBroker, monitor: MqttProbe, device_id: str
) -> None:
    device = _device(broker, device_id, interval=0.1)
    device.start()
    assert device.wait_connected(5)
    results: list[bool] = []
    stopper = threading.Thread(target=lambda: results.append(device.stop()))
    stopper.start()
    stopper.join(10)
    assert results == [True]
    assert device.stop() is True

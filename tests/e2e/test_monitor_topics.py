"""End to end: what the monitor leaves on the broker stays true.

A retained status follows a beating device between transitions, at a bounded rate; the
monitor's own presence says when it went offline (or that its will cannot know); a
device found dead at start-up is offline since its will arrived, and first seen when
the monitor first saw it; retained config topics agree with the database after a start.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from tests.mqtt_helpers import MqttProbe, Received

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
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _wall(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _body(message: Received) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message.payload)
    return body


def _hb(seq: int, session: str, interval: float) -> str:
    return json.dumps({"seq": seq, "session": session, "interval": interval})


def _refreshes(watch: StatusWatch, device_id: str) -> list[dict[str, Any]]:
    """Statuses of an online device that only moved its last_seen (no transition)."""
    found = [s for s in watch.statuses(device_id) if s["state"] == "online" and s["last_seen"]]
    return [b for a, b in itertools.pairwise(found) if b["since"] == a["since"]]


# ---------------------------------------------------------------- status freshness


@SQLITE_ONLY
def test_status_shows_the_current_session_interval_and_first_heartbeat(
    broker: TestBroker, database_url: str, tmp_path: Path, spawned: Spawned, watch: StatusWatch
) -> None:
    dev = "topics-shown-1"
    broker.add_device(dev)
    # Intervals long enough that the device cannot go late however slow this machine
    # is: every status below must come from a change that was not a transition.
    settings = {**FAST, "default_interval": 20}
    monitor = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **settings)
    monitor.start(probe=watch)
    try:
        # Online by presence: known, no heartbeat yet (last_seen null), default interval.
        spawned.publish(dev, "presence", json.dumps({"state": "online", "session": "a"}))
        first = watch.wait_state(dev, "online")
        assert (first["last_seen"], first["session"], first["interval"]) == (None, "a", 20.0)

        # Its first heartbeat announces 50 s: shown at once, though nothing transitioned.
        spawned.publish(dev, "heartbeat", _hb(0, "a", 50))
        watch.wait_for(
            lambda m: (
                m.topic.endswith(dev)
                and (body := json.loads(m.payload))["last_seen"] is not None
                and body["interval"] == 50.0
            ),
            10,
        )
        # A new session while online (a quick reconnect), beating every 60 s.
        spawned.publish(dev, "heartbeat", _hb(0, "b", 60))
        shown = watch.wait_for(
            lambda m: (
                m.topic.endswith(dev)
                and json.loads(m.payload)["session"] == "b"
                and json.loads(m.payload)["interval"] == 60.0
            ),
            10,
        )
        body = json.loads(shown[-1].payload)
        assert (body["state"], body["since"]) == ("online", first["since"])

        # Ops change the interval the device is judged by, and its class: shown too.
        monitor.cli("devices", "set-interval", dev, "600")
        watch.wait_for(lambda m: m.topic.endswith(dev) and _body(m)["interval"] == 600.0, 15)
        monitor.cli("classes", "set", "slow", "--interval", "300")
        monitor.cli("devices", "set-class", dev, "slow")
        watch.wait_for(
            lambda m: (
                m.topic.endswith(dev)
                and (_body(m)["class"], _body(m)["interval"]) == ("slow", 600.0)
            ),
            15,
        )
        monitor.cli("devices", "set-interval", dev, "clear")
        watch.wait_for(lambda m: m.topic.endswith(dev) and _body(m)["interval"] == 300.0, 15)
        # None of that was a transition: the statuses were republished because what
        # they showed had changed.
        assert [(t.old_state, t.new_state) for t in read_transitions(database_url, dev)] == [
            (None, "online")
        ]
    finally:
        monitor.stop()


@SQLITE_ONLY
def test_status_last_seen_is_refreshed_at_most_once_per_period(
    broker: TestBroker, database_url: str, tmp_path: Path, spawned: Spawned, watch: StatusWatch
) -> None:
    dev = "topics-refresh-1"
    broker.add_device(dev)
    period = 1.0
    interval = 0.1
    monitor = MonitorProcess(
        broker, database_url, tmp_path / "monitor.log", status_refresh=period, **FAST
    )
    monitor.start(probe=watch)
    try:
        spawned.device(dev, interval=interval)
        watch.wait_state(dev, "online")
        # Four refreshes: each moves last_seen on by about a period.
        wait_until(lambda: len(_refreshes(watch, dev)) >= 4, 30, what="four refreshes")
        refreshes = _refreshes(watch, dev)
        first_beat = next(s for s in watch.statuses(dev) if s["last_seen"])
        span = _wall(refreshes[-1]["last_seen"]) - _wall(first_beat["last_seen"])
        # At most one per line of the device's grid that its heartbeats crossed; one
        # status per heartbeat would be ten times as many.
        assert len(refreshes) <= span / period + 2, (span, len(refreshes))
        seen = [_wall(s["last_seen"]) for s in refreshes]
        assert seen == sorted(seen)
        assert monitor.running()
    finally:
        monitor.stop()


@SQLITE_ONLY
def test_status_refreshes_slow_down_to_fit_the_fleet_budget(
    broker: TestBroker, database_url: str, tmp_path: Path, spawned: Spawned, watch: StatusWatch
) -> None:
    count, rate = 12, 3.0
    ids = [f"topics-budget-{i:05d}" for i in range(count)]
    broker.add_devices(ids, "fleet-secret")
    # A 0.5 s minimum, but 12 devices at 3 refreshes a second: a period of 4 s.
    period = count / rate
    monitor = MonitorProcess(
        broker,
        database_url,
        tmp_path / "monitor.log",
        status_refresh=0.5,
        status_refresh_rate=rate,
        **FAST,
    )
    monitor.start(probe=watch)
    try:
        spawned.simulate(prefix="topics-budget-", count=count, password="fleet-secret")
        wait_until(
            lambda: all(len(_refreshes(watch, i)) >= 2 for i in ids),
            period * 3 + 20,
            what="two refreshes of every device",
        )
        for device_id in ids:
            statuses = [s for s in watch.statuses(device_id) if s["last_seen"]]
            refreshes = _refreshes(watch, device_id)
            span = _wall(refreshes[-1]["last_seen"]) - _wall(statuses[0]["last_seen"])
            assert len(refreshes) <= span / period + 2, (device_id, span, len(refreshes))
    finally:
        monitor.stop()


# ------------------------------------------------------------ times the monitor states


@SQLITE_ONLY
def test_monitor_presence_says_when_it_went_offline_and_its_will_does_not_guess(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> None:
    topic = f"{ROOT}/monitor/presence"
    monitor = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    monitor.start(probe=watch)
    time.sleep(1.5)  # so that "since the process started" and "since it stopped" differ
    stopping = time.time()
    mark = time.monotonic()
    assert monitor.terminate() == 0
    [stopped] = watch.wait_for(lambda m: m.topic == topic and m.at >= mark, 10)
    body = json.loads(stopped.payload)
    assert body["state"] == "offline"
    assert _wall(body["since"]) >= stopping - 0.01
    assert body["reason"] == "shutdown"

    monitor.start(probe=watch)
    mark = time.monotonic()
    monitor.kill()
    # The broker publishes the will when it finds the connection gone; the monitor set
    # it at connect time and cannot know when that will be.
    [will] = watch.wait_for(
        lambda m: m.topic == topic and m.at >= mark and json.loads(m.payload)["state"] == "offline",
        20,
    )
    body = json.loads(will.payload)
    assert body["since"] is None
    assert body["reason"] == "connection-lost"


@SQLITE_ONLY
def test_device_dead_at_restart_is_offline_since_its_will_arrived(
    broker: TestBroker, database_url: str, tmp_path: Path, spawned: Spawned, watch: StatusWatch
) -> None:
    victim = "topics-victim-1"
    broker.add_device(victim)
    warmup = 6.0
    # A flush window long enough that "first flushed" and "first seen" differ.
    settings = {**FAST, "warmup": warmup, "flush_interval": 2.0}
    monitor = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **settings)
    monitor.start(probe=watch)
    try:
        proc = spawned.device(victim)
        watch.wait_state(victim, "online")
        wait_until(lambda: victim in read_devices(database_url), 20, what="victim stored")
        first = read_transitions(database_url, victim)[0]
        assert first.old_state is None
        # first_seen is when the monitor first saw the device, not its first flush.
        assert read_devices(database_url)[victim].first_seen == first.at

        monitor.kill()
        proc.kill()
        proc.wait(5)
        topic = f"{ROOT}/monitor/presence"
        mark, restarting = time.monotonic(), time.time()
        monitor.start(probe=watch)
        [online] = watch.wait_for(
            lambda m: (
                m.topic == topic and m.at >= mark and json.loads(m.payload)["state"] == "online"
            ),
            5,
        )
        connected = _wall(json.loads(online.payload)["since"])
        offline = watch.wait_state(victim, "offline", after=mark, timeout=warmup + 20)
        # The will was replayed on connecting; warm-up ended `warmup` after that.
        since = _wall(offline["since"])
        assert restarting <= since < connected + warmup / 2, (restarting, connected, since)

        # The status goes out as the transition is made; its row is committed just after.
        def offline_row() -> StoredTransition | None:
            rows = read_transitions(database_url, victim)
            return rows[-1] if rows and rows[-1].new_state == "offline" else None

        last = wait_until(offline_row, 10, what="the offline transition row")
        assert abs(last.at.timestamp() - since) < 0.001
    finally:
        monitor.stop()


# ----------------------------------------------------------------- config topics


def _announced(probe: MqttProbe, device_id: str, after: float) -> float | None:
    topic = f"{ROOT}/devices/{device_id}/heartbeat"
    found = probe.matching(lambda m: m.topic == topic and m.at >= after and not m.retain)
    return float(json.loads(found[-1].payload)["interval"]) if found else None


@SQLITE_ONLY
def test_config_topics_are_reconciled_with_the_database_at_start(
    broker: TestBroker, database_url: str, tmp_path: Path, spawned: Spawned, watch: StatusWatch
) -> None:
    stray, rewritten, missing = "topics-cfg-stray", "topics-cfg-rewrite", "topics-cfg-missing"
    for device_id in (stray, rewritten, missing):
        broker.add_device(device_id)
    monitor = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    monitor.start(probe=watch)
    try:
        spawned.device(rewritten, interval=1)
        spawned.device(missing, interval=1)
        for device_id in (rewritten, missing):
            watch.wait_state(device_id, "online")
            monitor.cli("devices", "set-interval", device_id, "0.5")
        wait_until(
            lambda: all(
                (read_devices(database_url)[d].announced_interval == 0.5)
                for d in (rewritten, missing)
            ),
            20,
            what="both devices at the configured 0.5 s",
        )
    finally:
        monitor.stop()

    # While no monitor runs, what the broker retains goes wrong: an earlier monitor's
    # config for a device this database never saw, another interval for one, and a
    # lost one (a broker restored without it).
    old = MqttProbe(broker.url(), client_id=broker.monitor_user)
    old.connect()
    try:
        old.subscribe(f"{ROOT}/devices/+/heartbeat")
        old.publish(f"{ROOT}/devices/{stray}/config", '{"interval": 0.3}', retain=True)
        old.publish(f"{ROOT}/devices/{rewritten}/config", '{"interval": 0.3}', retain=True)
        old.publish(f"{ROOT}/devices/{missing}/config", b"", retain=True)
        mark = time.monotonic()
        spawned.device(stray, interval=1)
        wait_until(
            lambda: (
                (_announced(old, stray, mark), _announced(old, rewritten, mark)) == (0.3, 0.3)
                and _announced(old, missing, mark) == 1.0
            ),
            20,
            what="the devices following the wrong configs",
        )
    finally:
        old.close()

    mark = time.monotonic()
    monitor.start(probe=watch)
    try:
        [online] = watch.wait_for(
            lambda m: (
                m.topic == f"{ROOT}/monitor/presence"
                and m.at >= mark
                and _body(m)["state"] == "online"
            ),
            5,
        )
        # Heartbeats from after warm-up (and one old interval more), when the monitor
        # has reconciled everything: the database still holds the last run's figures.
        settled = _wall(_body(online)["since"]) + FAST["warmup"] + 1.5
        wanted = {stray: 1.0, rewritten: 0.5, missing: 0.5}

        def beating_as_wanted() -> bool:
            devices = read_devices(database_url)
            return all(
                d in devices
                and devices[d].announced_interval == interval
                and (devices[d].last_seen or datetime.min.replace(tzinfo=UTC)).timestamp() > settled
                for d, interval in wanted.items()
            )

        wait_until(beating_as_wanted, 30, what=f"devices beating at {wanted}")
    finally:
        monitor.stop()

    after = MqttProbe(broker.url(), client_id=broker.monitor_user)
    after.connect()
    try:
        # One subscription after the other: what the broker retains for the first
        # topic arrives before the second topic's.
        for device_id in (stray, rewritten, missing):
            after.subscribe(f"{ROOT}/devices/{device_id}/config")
        retained = after.wait_for(lambda m: m.retain and m.topic.endswith("missing/config"), 5)
        held = {
            m.topic.split("/")[-2]: json.loads(m.payload)
            for m in after.matching(lambda m: m.retain)
        }
        assert retained
        assert held == {rewritten: {"interval": 0.5}, missing: {"interval": 0.5}}
    finally:
        after.close()

"""End to end: PostgreSQL goes away for 30 s under a beating fleet, then comes back.

The monitor must not crash or stall (it judges devices from memory), keep every
transition it made meanwhile, and write all of them once the database is back, so that
history and the devices table converge to what the status topics said.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from monitor.store import migrate
from tests.harness.monitor import (
    MonitorProcess,
    Spawned,
    StatusWatch,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.mosquitto import TestBroker
from tests.harness.postgres import RestartableServer, run_coroutine

OUTAGE = 30.0
FLEET = 40
PASSWORD = "outage-secret"
FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 1,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "summary_interval": 1,
}


@pytest.mark.slow
def test_database_outage_under_load(
    broker: TestBroker,
    pg_cluster: RestartableServer,
    tmp_path: Path,
    spawned: Spawned,
    watch: StatusWatch,
) -> None:
    url = pg_cluster.create_database("clawbeat_outage")
    run_coroutine(lambda: migrate.upgrade(url))
    fleet = [f"e2e-out-{i:05d}" for i in range(FLEET)]
    victims = [f"e2e-victim-{i}" for i in range(4)]
    broker.add_devices(fleet, PASSWORD)
    for victim in victims:
        broker.add_device(victim)
    monitor = MonitorProcess(broker, url, tmp_path / "monitor.log", **FAST)
    monitor.start(probe=watch)
    try:
        spawned.simulate(prefix="e2e-out-", count=FLEET, password=PASSWORD)
        procs = {v: spawned.device(v) for v in victims}

        def all_online() -> bool:
            devices = read_devices(url)
            return all(d in devices and devices[d].state == "online" for d in fleet + victims)

        wait_until(all_online, 20, what="everyone online in the database")

        # --- the outage ---------------------------------------------------------------
        pg_cluster.stop()
        down, down_wall = time.monotonic(), time.time()
        # Transitions happen while the database is away: two devices die, one shuts
        # down cleanly, one dies and comes back on a new session.
        for victim in victims[:2]:
            procs[victim].kill()
        procs[victims[2]].send_signal(signal.SIGTERM)
        procs[victims[3]].kill()
        for victim in (*victims[:2], victims[3]):
            watch.wait_state(victim, "offline", reason="connection-lost", after=down)
        watch.wait_state(victims[2], "offline", reason="shutdown", after=down)
        mark = time.monotonic()
        procs[victims[3]] = spawned.device(victims[3])
        watch.wait_state(victims[3], "online", reason="presence-online", after=mark)
        # The rest of the outage: the fleet beats on, the monitor keeps judging.
        while time.monotonic() - down < OUTAGE:
            assert monitor.running(), monitor.log_tail()
            time.sleep(1)
        assert monitor.running(), monitor.log_tail()
        up_wall = time.time()
        pg_cluster.start()

        # --- convergence ------------------------------------------------------------
        # Every transition the monitor made (and logged) is in the database, exactly
        # once; the writer retries with capped backoff (30 s), hence the long timeout.
        def history_complete() -> bool:
            logged = Counter(monitor.logged_transitions())
            stored = Counter(
                (t.device_id, t.old_state, t.new_state, t.reason) for t in read_transitions(url)
            )
            return stored == logged

        wait_until(history_complete, 75, every=0.5, what="every transition in the database")

        # The devices table matches the retained status topics.
        def converged() -> bool:
            devices = read_devices(url)
            statuses = watch.latest_all()
            return set(devices) == set(statuses) and all(
                devices[d].state == statuses[d]["state"]
                and devices[d].session == statuses[d]["session"]
                for d in devices
            )

        wait_until(converged, 10, what="devices table == status topics")

        # The transitions made during the outage carry their own times, not the time
        # they were written.
        for victim in victims:
            rows = read_transitions(url, victim)
            assert [(t.old_state, t.new_state) for t in rows][:2] == [
                (None, "online"),
                ("online", "offline"),
            ]
            assert down_wall <= rows[1].at.timestamp() <= up_wall
        assert [(t.new_state, t.reason) for t in read_transitions(url, victims[3])][1:] == [
            ("offline", "connection-lost"),
            ("online", "presence-online"),
        ]
        # A database outage is no reason to judge the fleet: nothing but first-seen.
        fleet_rows = [t for t in read_transitions(url) if t.device_id in set(fleet)]
        assert {(t.old_state, t.new_state) for t in fleet_rows} == {(None, "online")}
        assert len(fleet_rows) == FLEET
        assert monitor.running()
        log = monitor.log_path.read_text(errors="replace")
        assert "database unavailable" in log
        assert "database is back" in log
    finally:
        monitor.stop()

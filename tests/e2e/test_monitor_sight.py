"""End to end: a monitor that cannot see -- frozen, or cut off from the broker -- blames no one.

A monitor stopped with SIGSTOP (a GC pause, a VM migration, CPU starvation) while the
fleet keeps beating must notice the gap from its clocks, read what queued meanwhile
and only then judge; whether the broker kept the connection (long keepalive) or
dropped it (short keepalive), nothing it queued may be lost. A blackholed link must be
noticed before any device deadline the monitor would otherwise blame.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.monitor import (
    MonitorProcess,
    Spawned,
    StatusWatch,
    read_devices,
    read_heartbeats_counted,
    read_missed_counted,
    read_transitions,
    wait_until,
)
from tests.harness.mosquitto import TestBroker
from tests.harness.tcp_proxy import TcpProxy

PASSWORD = "sight-secret"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _fleet(broker: TestBroker, prefix: str, count: int) -> list[str]:
    ids = [f"{prefix}{i:05d}" for i in range(count)]
    broker.add_devices(ids, PASSWORD)
    return ids


def _all_online(database_url: str, ids: list[str]) -> bool:
    devices = read_devices(database_url)
    return all(i in devices and devices[i].state == "online" for i in ids)


def _all_seen_after(database_url: str, ids: list[str], wall: float) -> bool:
    devices = read_devices(database_url)
    return all((seen := devices[i].last_seen) is not None and seen.timestamp() > wall for i in ids)


def _changes_since(database_url: str, at: datetime) -> list[tuple[str, str | None, str]]:
    return [
        (t.device_id, t.old_state, t.new_state)
        for t in read_transitions(database_url)
        if t.at >= at
    ]


def _logged_at(monitor: MonitorProcess, text: str, after: float) -> float | None:
    """Wall time of the first log line containing ``text`` at or after ``after``."""
    for line in monitor.log_path.read_text(errors="replace").splitlines():
        if text not in line:
            continue
        at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        if at.timestamp() >= after:
            return at.timestamp()
    return None


@SQLITE_ONLY
@pytest.mark.parametrize("keepalive", [5, 60], ids=["broker-drops-it", "broker-keeps-it"])
def test_a_frozen_monitor_reads_what_queued_and_blames_no_device(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    spawned: Spawned,
    watch: StatusWatch,
    keepalive: int,
) -> None:
    count, interval, grace = 200, 1.0, 2.0
    fleet = _fleet(broker, "e2e-stall-", count)
    monitor = MonitorProcess(
        broker,
        database_url,
        tmp_path / "monitor.log",
        grace=grace,
        missed_limit=2,
        warmup=1,
        will_hold=0.5,
        flush_interval=0.2,
        rollup_interval=1,
        summary_interval=1,
        mqtt_keepalive=keepalive,
    )
    monitor.start(probe=watch)
    try:
        sim = spawned.simulate(
            prefix="e2e-stall-", count=count, password=PASSWORD, interval=interval
        )
        wait_until(lambda: _all_online(database_url, fleet), 30, what="fleet online")

        # Longer than every device's stale deadline (interval x 2 + grace = 4 s); with
        # the short keepalive, until the broker has dropped the frozen monitor (after
        # 1.5 x keepalive), its will published and its queue kept for the session.
        dropped = "Client monitor has exceeded timeout"
        drops_before = broker.log_path.read_text(errors="replace").count(dropped)
        frozen = datetime.now(UTC)
        os.kill(monitor.pid, signal.SIGSTOP)
        try:
            time.sleep(12.0)
            if keepalive < 12:
                wait_until(
                    lambda: (
                        broker.log_path.read_text(errors="replace").count(dropped) > drops_before
                    ),
                    60,
                    what="the broker dropping the frozen monitor",
                )
        finally:
            os.kill(monitor.pid, signal.SIGCONT)
        resumed = time.time()

        wait_until(
            lambda: _logged_at(monitor, "seeing again after", resumed),
            30,
            what="the monitor seeing again",
        )
        wait_until(
            lambda: _all_seen_after(database_url, fleet, resumed),
            30,
            what="every device heard after the stall",
        )
        # Time for a false verdict to show: interval + grace after sight returned.
        time.sleep(interval + grace + 1)
        assert _changes_since(database_url, frozen) == []
        assert _all_online(database_url, fleet)
        assert _logged_at(monitor, "blind: the monitor itself did not run", resumed - 1)

        # Nothing the broker queued for the monitor was lost: once the fleet stops,
        # the heartbeats it counted are every device's seq 0 .. last.
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
        figures: list[tuple[int, int]] = []

        def all_counted() -> bool:
            devices = read_devices(database_url)
            sent = sum((devices[i].last_seq or 0) + 1 for i in fleet)
            figures.append((sent, read_heartbeats_counted(database_url)))
            return figures[-1][0] == figures[-1][1]

        try:
            wait_until(all_counted, 20, what="every heartbeat counted")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; (sent, counted): {figures[-3:]}") from None
        # Nor was the stall counted as the fleet's missed heartbeats: the queued ones
        # are read blind, and their gap is the monitor's. (Counted, the 12 s stall was
        # about six per device; a loaded machine may delay a few beats for real.)
        missed = read_missed_counted(database_url)
        assert missed < count, f"{missed} missed heartbeats counted for a monitor stall"
        if keepalive == 5:
            assert "session resumed" in monitor.log_path.read_text()
    finally:
        monitor.stop()


@SQLITE_ONLY
def test_a_blackholed_link_is_noticed_before_any_device_deadline(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    spawned: Spawned,
    watch: StatusWatch,
) -> None:
    count, interval, grace = 20, 2.0, 4.0
    fleet = _fleet(broker, "e2e-cut-", count)
    proxy = TcpProxy(broker.host, broker.port)
    through_proxy = broker.url().replace(f":{broker.port}", f":{proxy.port}")
    monitor = MonitorProcess(
        broker,
        database_url,
        tmp_path / "monitor.log",
        mqtt_url=through_proxy,
        grace=grace,
        missed_limit=2,
        warmup=1,
        flush_interval=0.2,
        summary_interval=1,
        mqtt_keepalive=5,
    )
    monitor.start(probe=watch)
    try:
        # The devices reach the broker directly: only the monitor's link is cut.
        spawned.simulate(prefix="e2e-cut-", count=count, password=PASSWORD, interval=interval)
        wait_until(lambda: _all_online(database_url, fleet), 30, what="fleet online")

        cut = time.time()
        cut_at = datetime.now(UTC)
        proxy.blackhole()
        # Longer than interval + grace (every device would be late) and than keepalive.
        time.sleep(2 * (interval + grace))
        proxy.restore()
        restored = time.time()

        # Normally for the unanswered probe; on a starved machine its own stall may say
        # it first. Either way, in time.
        blind_at = _logged_at(monitor, "clawbeat.monitor: blind: ", cut)
        assert blind_at is not None, monitor.log_tail()
        # The first device deadline it could have blamed: a heartbeat due just as the
        # link died is late one grace later.
        assert blind_at - cut < grace
        wait_until(
            lambda: _logged_at(monitor, "seeing again after", restored),
            40,
            what="the monitor seeing again",
        )
        wait_until(
            lambda: _all_seen_after(database_url, fleet, restored),
            30,
            what="every device heard after the cut",
        )
        time.sleep(interval + grace + 1)
        assert _changes_since(database_url, cut_at) == []
        assert _all_online(database_url, fleet)
    finally:
        monitor.stop()
        proxy.close()

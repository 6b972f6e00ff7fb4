"""End to end: a SIGTERM while the fleet keeps beating ends the monitor cleanly.

Heartbeats keep arriving while the monitor flushes and says goodbye; none of them may
reach a writer that is already closed (each would be a traceback and a count in
``clawbeat_message_handler_errors_total``, which the docs call a bug).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.monitor import MonitorProcess, Spawned, StatusWatch, read_devices, wait_until
from tests.harness.mosquitto import TestBroker

PASSWORD = "shutdown-secret"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_under_load_takes_no_message_after_closing_the_writer(
    broker: TestBroker, database_url: str, tmp_path: Path, spawned: Spawned
) -> None:
    count = 200
    ids = [f"e2e-term-load-{i:05d}" for i in range(count)]
    broker.add_devices(ids, PASSWORD)
    monitor = MonitorProcess(
        broker,
        database_url,
        tmp_path / "monitor.log",
        default_interval=0.2,
        grace=2,
        warmup=1,
        flush_interval=0.2,
    )
    watch = StatusWatch(broker)
    try:
        monitor.start(probe=watch)
        # About 1,000 heartbeats/s: some arrive during every step of the shutdown.
        spawned.simulate(prefix="e2e-term-load-", count=count, password=PASSWORD, interval=0.2)
        wait_until(lambda: len(read_devices(database_url)) == count, 30, what="every device stored")
        assert monitor.terminate() == 0, monitor.log_tail()
        log = monitor.log_path.read_text(errors="replace")
        assert "message handler failed" not in log
        assert "WriterClosed" not in log
        assert "stopped" in monitor.log_tail()
    finally:
        watch.close()
        monitor.stop()

"""Fixtures every end-to-end test shares: real processes it starts, and a watcher of the
retained status topics on the test's own broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.monitor import Spawned, StatusWatch
from tests.harness.mosquitto import TestBroker


@pytest.fixture
def spawned(broker: TestBroker, tmp_path: Path) -> Iterator[Spawned]:
    """Monitor and device processes, each killed at the end of the test if still alive."""
    procs = Spawned(broker, tmp_path)
    yield procs
    procs.close()


@pytest.fixture
def watch(broker: TestBroker) -> Iterator[StatusWatch]:
    """Every status/{id} the monitor publishes, as a device sees it."""
    probe = StatusWatch(broker)
    yield probe
    probe.close()

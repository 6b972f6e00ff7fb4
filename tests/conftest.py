"""Shared fixtures: a real Mosquitto per test, ids derived from the test name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.mosquitto import TestBroker, check_mosquitto_installed

pytest_plugins = ["tests.harness.db_fixtures", "tests.harness.api"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TestBroker]:
    """A Mosquitto of our own on free ports, from the project's mosquitto.conf."""
    missing = check_mosquitto_installed()
    if missing:
        # Never skip: a run without a broker would report green while testing nothing.
        pytest.fail(missing, pytrace=False)
    test_broker = TestBroker(tmp_path / "broker")
    test_broker.start()
    try:
        yield test_broker
    finally:
        test_broker.stop()


@pytest.fixture
def device_id(request: pytest.FixtureRequest) -> str:
    """A device id unique to the test (valid per protocol v1)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)
    return name[-56:].strip("-") or "device"

"""The log throttle the SDK and the monitor share: one line per key per period."""

from __future__ import annotations

import logging

import pytest

from device_client.log_throttle import MAX_KEYS, LogThrottle
from monitor.logging_setup import RateLimitedLog


def test_one_line_per_key_per_period_and_the_rest_counted() -> None:
    throttle = LogThrottle(period=10.0)
    assert throttle.allow("a", 100.0)
    assert not throttle.allow("a", 105.0)
    assert not throttle.allow("a", 109.9)
    assert throttle.allow("b", 105.0)  # keys are independent
    assert throttle.allow("a", 110.0)
    assert throttle.note("a") == " (2 similar suppressed)"
    assert throttle.note("a") == ""  # taken once
    assert throttle.note("b") == ""


def test_hostile_key_churn_is_bounded() -> None:
    throttle = LogThrottle(period=60.0)
    for i in range(MAX_KEYS):
        assert throttle.allow(f"k{i}", 0.0)
    assert not throttle.allow("k0", 1.0)
    # A new key past the bound forgets the old ones instead of growing.
    assert throttle.allow("fresh", 1.0)
    assert throttle.allow("k0", 1.0)


def test_rate_limited_log_appends_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger("clawbeat.test-throttle"), period=3600.0)
    with caplog.at_level(logging.WARNING, logger="clawbeat.test-throttle"):
        for n in range(5):
            line = f"dropped message {n}"
            limited.warning("topic", line)
    assert [r.getMessage() for r in caplog.records] == ["dropped message 0"]

"""The failed-authentication budget (monitor/web/ratelimit.py), driven with explicit times."""

from __future__ import annotations

import pytest

from monitor.web.ratelimit import FailureLimiter, client_key


def test_a_burst_of_failures_then_refusal_until_the_budget_refills() -> None:
    limiter = FailureLimiter(burst=3, per_second=0.5, max_clients=10)
    for i in range(3):
        assert limiter.retry_after("a", 100.0 + i * 0.01) is None
        limiter.failed("a", 100.0 + i * 0.01)
    # Empty: one failure refills in 1 / 0.5 = 2 s.
    assert limiter.retry_after("a", 100.03) == 2
    assert limiter.retry_after("a", 101.5) == 1
    assert limiter.retry_after("a", 102.1) is None
    limiter.failed("a", 102.1)
    assert limiter.retry_after("a", 102.2) == 2
    # Another client has its own budget.
    assert limiter.retry_after("b", 102.2) is None


def test_the_budget_never_exceeds_the_burst() -> None:
    limiter = FailureLimiter(burst=2, per_second=1.0, max_clients=10)
    limiter.failed("a", 0.0)
    # A day later: two failures allowed again, not 86,400.
    limiter.failed("a", 86_400.0)
    limiter.failed("a", 86_400.0)
    assert limiter.retry_after("a", 86_400.0) == 1


def test_memory_is_bounded_and_refilled_clients_go_first() -> None:
    limiter = FailureLimiter(burst=2, per_second=1.0, max_clients=3)
    limiter.failed("old", 0.0)  # refilled by t=1: the same as never having failed
    limiter.failed("x", 10.0)
    assert len(limiter) == 1, "the refilled client was not dropped"
    limiter.failed("x", 10.0)
    limiter.failed("y", 10.0)
    limiter.failed("y", 10.0)
    limiter.failed("z", 10.5)
    assert len(limiter) == 3
    # Full of clients that have not refilled: the least recently failed is forgotten.
    limiter.failed("w", 10.6)
    assert len(limiter) == 3
    assert limiter.retry_after("x", 10.6) is None
    assert limiter.retry_after("y", 10.6) == 1
    for i in range(1000):
        limiter.failed(f"c{i}", 11.0)
    assert len(limiter) == 3


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, "?"),
        ("", "?"),
        ("unix-socket", "unix-socket"),
    ],
)
def test_clients_are_addresses_and_ipv6_counts_per_64(host: str | None, key: str) -> None:
    assert client_key(host) == key


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        FailureLimiter(burst=0)

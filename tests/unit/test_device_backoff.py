"""Reconnect backoff: capped exponential steps, full jitter, reset."""

from __future__ import annotations

import random

import pytest

from device_client.backoff import Backoff, spread_delay


class _Max(random.Random):
    """Always picks the top of the range, so the step sizes are visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_steps_double_from_base_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=_Max())
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_full_jitter_spreads_delays_over_zero_to_the_step() -> None:
    rng = random.Random(7)
    delays = []
    for _ in range(2000):
        backoff = Backoff(base=1.0, cap=8.0, rng=rng)
        for _ in range(3):
            backoff.next_delay()
        delays.append(backoff.next_delay())  # the fourth step: ceiling 8
    assert min(delays) >= 0.0
    assert max(delays) <= 8.0
    # Spread over the whole range, not clustered at the step: that is what keeps a fleet
    # from reconnecting in lockstep after a broker restart.
    assert min(delays) < 0.5
    assert max(delays) > 7.5
    assert 3.5 < sum(delays) / len(delays) < 4.5


def test_reset_starts_over_at_base() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=_Max())
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_years_of_failures_do_not_overflow() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=_Max())
    backoff.failures = 10_000_000
    assert backoff.next_delay() == 30.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_nonsense_parameters_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base=base, cap=cap, rng=random.Random())


def test_proportional_spread_stays_near_the_step_and_under_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7), spread=0.2)
    steps = [1.0, 2.0, 4.0, 8.0, 8.0]
    for expected in steps:
        delay = backoff.next_delay()
        assert 0.8 * expected <= delay <= min(8.0, 1.2 * expected)
    backoff.reset()
    assert backoff.ceiling() == 1.0


def test_spread_delay_is_pure_and_capped() -> None:
    assert spread_delay(0, base=5.0, cap=900.0, factor=1.2) == 6.0
    assert spread_delay(3, base=5.0, cap=900.0, factor=1.0) == 40.0
    assert spread_delay(10_000, base=5.0, cap=900.0, factor=1.2) == 900.0

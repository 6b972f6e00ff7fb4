"""Simulator planning: fault assignment and option validation (no broker)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from device_client.endpoint import Endpoint
from device_client.simulate import Fault, FleetOptions, assign_faults


def test_faults_go_to_disjoint_subsets_of_the_requested_sizes() -> None:
    faults = assign_faults(2000, die=0.05, mute=0.1, flap=0.02, rng=random.Random(1))
    counts = Counter(faults)
    assert counts == {Fault.DIE: 100, Fault.MUTE: 200, Fault.FLAP: 40, Fault.NONE: 1660}


def test_fault_choice_is_reproducible_with_a_seed_and_random_without() -> None:
    a = assign_faults(500, die=0.1, mute=0.1, flap=0.1, rng=random.Random(42))
    b = assign_faults(500, die=0.1, mute=0.1, flap=0.1, rng=random.Random(42))
    c = assign_faults(500, die=0.1, mute=0.1, flap=0.1, rng=random.Random(43))
    assert a == b
    assert a != c
    # Spread over the fleet, not the first N devices.
    dead = [i for i, f in enumerate(a) if f is Fault.DIE]
    assert max(dead) > 250


def test_everything_faulty_is_possible() -> None:
    faults = assign_faults(10, die=0.5, mute=0.5, flap=0.0, rng=random.Random(0))
    assert Counter(faults) == {Fault.DIE: 5, Fault.MUTE: 5}


def _options(**kwargs: Any) -> FleetOptions:
    kwargs.setdefault("devices", 10)
    return FleetOptions(endpoint=Endpoint("127.0.0.1", 1883), **kwargs)


def test_device_ids_follow_the_broker_tooling_format() -> None:
    opts = _options(devices=3, prefix="sim-", start=7)
    assert [opts.device_id(i) for i in range(3)] == ["sim-00007", "sim-00008", "sim-00009"]


def test_fault_timing_defaults_follow_the_interval() -> None:
    opts = _options(interval=2.0)
    assert opts.first_fault_after == 6.0
    assert opts.flap_every == 20.0
    opts = _options(interval=2.0, fault_after=0.0, flap_period=1.0)
    assert (opts.first_fault_after, opts.flap_every) == (0.0, 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"devices": 0},
        {"die_fraction": 1.5},
        {"mute_fraction": -0.1},
        {"die_fraction": 0.6, "flap_fraction": 0.6},
        {"connect_rate": 0.0},
        {"interval": 0.0},
        {"prefix": "bad/"},
        {"report_every": 0.0},
        {"keepalive": 0},
        {"keepalive": 301},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        _options(**kwargs)

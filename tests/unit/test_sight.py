"""The monitor's sight (monitor/sight.py), step by step with explicit clocks."""

from __future__ import annotations

import pytest

from monitor.sight import Blindness, Sight, probe_timing

T0 = 1_700_000_000.0


def sight_at(now: float = 0.0) -> Sight:
    return Sight(timeout=2.0, every=1.0, now=now, wall=T0 + now)


def connected(now: float = 0.0) -> Sight:
    """Connected and seeing: the first probe sent at ``now`` and echoed at once."""
    sight = sight_at(now)
    assert sight.connected(now) is None
    assert sight.blind  # not before the first echo
    assert sight.probe_due(now)
    sight.sent(1, now)
    change = sight.echoed(1, now)
    assert change is not None
    assert not change.blind
    assert not sight.blind
    return sight


@pytest.mark.parametrize(
    ("grace", "keepalive", "expected"),
    [(5.0, 10, (5 / 3, 5 / 6)), (10.0, 10, (10 / 3, 10 / 6)), (1.0, 10, (1.0, 0.5))],
)
def test_probe_timing_notices_a_cut_within_half_the_grace(
    grace: float, keepalive: int, expected: tuple[float, float]
) -> None:
    timeout, every = probe_timing(grace, keepalive)
    assert (timeout, every) == pytest.approx(expected)
    if grace >= 3:
        assert timeout + every <= grace / 2 + 1e-9


def test_probe_timing_never_waits_past_keepalive() -> None:
    assert probe_timing(60.0, 5) == (5.0, 2.5)


def test_a_probe_that_does_not_come_back_in_time_makes_it_blind() -> None:
    sight = connected()
    assert not sight.probe_due(0.9)
    assert sight.probe_due(1.0)
    sight.sent(2, 1.0)
    for now in (1.0, 2.0, 2.9):  # ticks: no gap in the monitor's own clock
        assert sight.check(now, T0 + now) is None
    change = sight.check(3.1, T0 + 3.1)
    assert change is not None
    assert (change.blind, change.reason) == (True, Blindness.PROBE_OVERDUE)
    # The late echo of the probe sent before the blindness is not enough: one sent
    # after it must come back, proving what was queued meanwhile has been read.
    assert sight.probe_due(3.1)
    sight.sent(3, 3.1)
    assert sight.echoed(2, 5.0) is None
    assert sight.blind
    change = sight.echoed(3, 5.1)
    assert change is not None
    assert (change.blind, change.reason) == (False, Blindness.PROBE_OVERDUE)
    assert change.blind_for == pytest.approx(2.0)


def test_a_gap_in_the_monitors_own_clock_is_a_stall() -> None:
    sight = connected()
    assert sight.check(0.1, T0 + 0.1) is None
    change = sight.check(20.1, T0 + 20.1)  # SIGSTOP for 20 s
    assert change is not None
    assert (change.blind, change.reason) == (True, Blindness.STALLED)
    assert sight.stalls == 1
    # Sight returns with the echo of a probe sent after the stall, not an older one.
    sight.sent(2, 20.1)
    assert sight.echoed(1, 20.2) is None
    change = sight.echoed(2, 20.5)
    assert change is not None
    assert not change.blind


def test_a_message_after_a_stall_says_to_check_first() -> None:
    # After SIGCONT the event loop may hand over queued messages before the tick runs:
    # the receive path asks, checks, and reads the backlog blind.
    sight = connected()
    assert not sight.overdue(1.9)
    assert sight.check(1.0, T0 + 1.0) is None
    assert not sight.overdue(2.9)
    assert sight.overdue(20.0)
    change = sight.check(20.0, T0 + 20.0)
    assert change is not None
    assert (change.blind, change.reason) == (True, Blindness.STALLED)
    assert not sight.overdue(20.1)


def test_a_wall_clock_jump_with_a_still_monotonic_clock_is_a_stall() -> None:
    # A VM suspended: the monotonic clock stood still, the wall clock did not.
    sight = connected()
    change = sight.check(0.1, T0 + 30.0)
    assert change is not None
    assert change.reason is Blindness.STALLED


def test_a_wall_clock_stepped_back_is_not_a_stall() -> None:
    sight = connected()
    assert sight.check(0.1, T0 - 3600.0) is None


def test_a_stall_while_already_blind_moves_the_barrier() -> None:
    sight = connected()
    assert sight.check(10.0, T0 + 10.0) is not None  # stall
    sight.sent(2, 10.0)
    assert sight.check(30.0, T0 + 30.0) is None  # a second stall: already blind
    sight.sent(3, 30.0)
    assert sight.echoed(2, 30.1) is None  # sent before the second stall
    change = sight.echoed(3, 30.2)
    assert change is not None
    assert not change.blind


def test_disconnected_then_reconnected_waits_for_an_echo() -> None:
    sight = connected()
    change = sight.disconnected(5.0)
    assert change is not None
    assert (change.blind, change.reason) == (True, Blindness.DISCONNECTED)
    assert not sight.probe_due(6.0)  # nothing to probe on
    assert sight.connected(8.0) is None
    assert sight.blind
    assert sight.probe_due(8.0)
    sight.sent(2, 8.0)
    change = sight.echoed(2, 8.3)
    assert change is not None
    assert (change.blind, change.reason) == (False, Blindness.DISCONNECTED)
    assert change.blind_for == pytest.approx(3.3)


def test_a_disconnect_while_blind_for_a_late_probe_is_reported() -> None:
    sight = connected()
    sight.sent(2, 1.0)
    assert sight.check(1.9, T0 + 1.9) is None
    assert sight.check(3.5, T0 + 3.5) is not None
    change = sight.disconnected(4.0)
    assert change is not None
    assert change.reason is Blindness.DISCONNECTED
    assert sight.reason is Blindness.DISCONNECTED


def test_without_the_probe_subscription_sight_returns_with_the_connection() -> None:
    sight = sight_at()
    change = sight.connected(1.0, probe=False)
    assert change is not None
    assert not change.blind
    assert not sight.probe_due(5.0)
    # A stall still makes it blind, and without probes the next tick sees again only
    # through the connection: the shell gives up on the barrier.
    assert sight.check(20.0, T0 + 20.0) is not None


def test_probes_never_answered_are_given_up() -> None:
    sight = sight_at()
    assert sight.connected(0.0) is None
    sight.sent(1, 0.0)
    assert not sight.never_answered(59.0, 60.0)
    assert sight.never_answered(61.0, 60.0)
    change = sight.give_up_probing(61.0)
    assert change is not None
    assert not change.blind
    # For good: a reconnection does not start probing again.
    sight.disconnected(70.0)
    assert sight.connected(71.0) is not None
    assert not sight.probing


def test_no_more_than_a_few_probes_are_outstanding() -> None:
    sight = connected()
    for seq in range(2, 10):
        sight.sent(seq, float(seq))
    assert not sight.probe_due(100.0)


def test_the_monitors_own_long_work_is_not_a_stall() -> None:
    sight = connected()
    assert sight.check(0.1, T0 + 0.1) is None
    sight.ran(5.0, T0 + 5.0)  # a tick that judged a mass outage
    assert sight.check(5.1, T0 + 5.1) is None

"""Clock offsets, step by step: estimated per session, kept out of latency (R2).

Times are explicit: ``now`` is the monotonic clock, the monitor's wall clock is
``T0 + now``; a device whose clock is off by ``skew`` stamps ``ts = T0 + sent + skew``.
"""

from __future__ import annotations

import pytest

from device_client.protocol import Heartbeat
from monitor.liveness import DeviceSnapshot, EventResult, LivenessEngine, State
from monitor.liveness.clock import STEP_VOTES, update

T0 = 1_700_000_000.0
HOUR = 3600.0


def beat(
    engine: LivenessEngine,
    sent: float,
    seq: int,
    *,
    skew: float,
    delay: float = 0.02,
    device: str = "d1",
    session: str = "s1",
) -> EventResult:
    """A heartbeat sent at ``sent`` by a clock off by ``skew``, received ``delay`` later."""
    heartbeat = Heartbeat(seq=seq, session=session, interval=30.0, ts=T0 + sent + skew)
    now = sent + delay
    return engine.heartbeat(device, heartbeat, now, T0 + now)


def offset(engine: LivenessEngine, device: str = "d1") -> float | None:
    snap = engine.snapshot(device)
    assert snap is not None
    return snap.clock_offset


def delays(n: int) -> list[float]:
    """Transport delays between 10 and 40 ms, varied."""
    return [0.010 + 0.030 * ((i * 7) % 10) / 10 for i in range(n)]


@pytest.mark.parametrize("skew", [HOUR, -HOUR, 120.0])
def test_a_skewed_clock_is_estimated_and_kept_out_of_latency(skew: float) -> None:
    engine = LivenessEngine()
    latencies = [
        beat(engine, 30.0 * i, i, skew=skew, delay=d).latency for i, d in enumerate(delays(40))
    ]
    assert offset(engine) == pytest.approx(skew, abs=0.04)
    assert engine.clock_skewed == 1
    assert all(lat is not None and -0.001 <= lat <= 0.04 for lat in latencies)


def test_opposite_skews_do_not_cancel_and_neither_swamps_latency() -> None:
    engine = LivenessEngine()
    for i, d in enumerate(delays(20)):
        ahead = beat(engine, 30.0 * i, i, skew=HOUR, delay=d, device="ahead")
        behind = beat(engine, 30.0 * i, i, skew=-HOUR, delay=d, device="behind")
        assert ahead.latency is not None
        assert abs(ahead.latency) < 0.05
        assert behind.latency is not None
        assert abs(behind.latency) < 0.05
    assert offset(engine, "ahead") == pytest.approx(HOUR, abs=0.04)
    assert offset(engine, "behind") == pytest.approx(-HOUR, abs=0.04)
    assert engine.clock_skewed == 2


def test_a_synced_clock_keeps_its_real_latency() -> None:
    engine = LivenessEngine()
    for i in range(10):
        result = beat(engine, 30.0 * i, i, skew=0.0, delay=0.150)
        assert result.latency == pytest.approx(0.150)
    assert offset(engine) == pytest.approx(-0.150)
    assert engine.clock_skewed == 0


def test_a_slow_delivery_is_latency_not_a_clock_step() -> None:
    engine = LivenessEngine()
    for i in range(10):
        beat(engine, 30.0 * i, i, skew=HOUR)
    # One message held up 20 s, then a backlog draining (delays shrinking by 1 s). For
    # a skewed clock latency counts from the least delay seen (20 ms here).
    result = beat(engine, 300.0, 10, skew=HOUR, delay=20.0)
    assert result.latency == pytest.approx(20.0 - 0.02)
    for k in range(13):
        result = beat(engine, 330.0 + k, 11 + k, skew=HOUR, delay=15.0 - k)
        assert result.latency == pytest.approx(15.0 - k - 0.02, abs=0.01)
    assert offset(engine) == pytest.approx(HOUR - 0.02, abs=0.01)
    # Its last, nearly drained messages let the estimate sink a little; the next prompt
    # heartbeat puts it back.
    beat(engine, 343.0, 24, skew=HOUR, delay=1.0)
    assert beat(engine, 373.0, 25, skew=HOUR).latency == 0.0
    assert offset(engine) == pytest.approx(HOUR - 0.02)


def test_a_clock_set_back_is_followed_after_a_few_beats() -> None:
    engine = LivenessEngine()
    for i in range(10):
        beat(engine, 30.0 * i, i, skew=HOUR)
    # NTP corrects the device within its session.
    for k in range(STEP_VOTES):
        beat(engine, 300.0 + 30.0 * k, 10 + k, skew=0.0)
    assert offset(engine) == pytest.approx(-0.02)
    assert engine.clock_skewed == 0
    assert beat(engine, 600.0, 20, skew=0.0).latency == pytest.approx(0.02)


def test_a_clock_set_forward_is_followed_at_once() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0, skew=0.0)
    assert beat(engine, 30.0, 1, skew=HOUR).latency == pytest.approx(0.0)
    assert offset(engine) == pytest.approx(HOUR - 0.02)


def test_a_new_session_estimates_afresh() -> None:
    engine = LivenessEngine()
    beat(engine, 0.0, 0, skew=HOUR)
    assert engine.clock_skewed == 1
    result = beat(engine, 100.0, 0, skew=0.0, session="s2")
    assert result.latency == pytest.approx(0.02)
    assert offset(engine) == pytest.approx(-0.02)
    assert engine.clock_skewed == 0


def test_heartbeats_without_ts_leave_no_estimate() -> None:
    engine = LivenessEngine()
    engine.heartbeat("d1", Heartbeat(seq=0, session="s1", interval=30.0), 0.0, T0)
    assert offset(engine) is None
    assert engine.clock_skewed == 0


def test_the_estimate_survives_a_restart_and_forget_uncounts_it() -> None:
    engine = LivenessEngine()
    snap = DeviceSnapshot(
        device_id="d1",
        state=State.ONLINE,
        since_wall=T0 - 100,
        session="s1",
        last_seq=5,
        last_seen_wall=T0 - 10,
        clock_offset=HOUR,
    )
    engine.load([snap], 0.0, T0)
    assert engine.clock_skewed == 1
    assert offset(engine) == HOUR
    assert beat(engine, 1.0, 6, skew=HOUR, delay=0.03).latency == pytest.approx(0.03)
    assert engine.forget("d1")
    assert engine.clock_skewed == 0


def test_estimate_arithmetic() -> None:
    # A sample above the estimate (less delay) is followed at once.
    assert update(10.0, 10.5, None) == (10.5, 10.5, None)
    # A slower one is judged by the estimate, which then sinks 1/16 of the way.
    offset, judged_by, step = update(10.5, 10.5 - 1.6, None)
    assert offset == pytest.approx(10.4)
    assert (judged_by, step) == (10.5, None)
    # A step back waits for its votes: STEP_VOTES samples in a row that agree.
    for _ in range(STEP_VOTES - 1):
        offset, judged_by, step = update(offset, 0.0, step)
        assert offset == judged_by == pytest.approx(10.4)
        assert step is not None
    assert update(offset, 0.0, step) == (0.0, 0.0, None)
    # Samples that disagree (a draining backlog) start the count again.
    step = None
    for k in range(2 * STEP_VOTES):
        offset, _, step = update(10.4, 10.4 - 20.0 + k, step)
        assert offset == pytest.approx(10.4)
        assert step is not None
        assert step.votes == 1

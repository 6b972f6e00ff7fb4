"""Signals and features, driven heartbeat by heartbeat with explicit times."""

from __future__ import annotations

import math

import pytest

from device_client.protocol import Heartbeat
from monitor.liveness.states import Reason, State, Transition
from monitor.risk.features import compute
from monitor.risk.rules import reasons, scores, strengths
from monitor.risk.signals import SignalTracker, metric_value

INTERVAL = 60.0


def _hb(seq: int, session: str = "a", uptime: float | None = None, **metrics: float) -> Heartbeat:
    return Heartbeat(
        seq=seq, session=session, interval=INTERVAL, uptime=uptime, metrics=dict(metrics)
    )


def _beat(tr: SignalTracker, dev: str, t: float, seq: int, session: str = "a", **kw: float) -> None:
    uptime = kw.pop("uptime", None)
    tr.heartbeat(dev, _hb(seq, session, uptime, **kw), t, interval=INTERVAL, device_class="sensor")


def test_regular_beats_give_gap_one_and_no_jitter() -> None:
    tr = SignalTracker()
    for k in range(100):
        _beat(tr, "d", k * INTERVAL, k)
    assert tr.value("d", "r_s") == pytest.approx(1.0)
    assert tr.value("d", "j_s") == pytest.approx(0.0)
    assert tr.value("d", "cusum") == 0.0
    assert tr.value("d", "missed_s") == 0.0


def test_a_gap_of_three_intervals_counts_two_missed_beats() -> None:
    tr = SignalTracker()
    _beat(tr, "d", 0.0, 0)
    _beat(tr, "d", INTERVAL, 1)
    _beat(tr, "d", 4 * INTERVAL, 2)
    assert tr.value("d", "missed_s") == pytest.approx(2.0)


def test_new_session_with_uptime_going_back_is_a_reboot_otherwise_a_reconnect() -> None:
    tr = SignalTracker()
    _beat(tr, "d", 0.0, 0, "a", uptime=1000.0)
    _beat(tr, "d", 60.0, 0, "b", uptime=1060.0)  # reconnect: uptime goes on
    _beat(tr, "d", 120.0, 0, "c", uptime=5.0)  # reboot
    assert tr.value("d", "reconn_s") == pytest.approx(1.0, rel=0.05)
    assert tr.value("d", "reboot_s") == pytest.approx(1.0)


def test_counters_decay_with_their_time_constant() -> None:
    tr = SignalTracker()
    _beat(tr, "d", 0.0, 0, "a", uptime=10.0)
    _beat(tr, "d", 10.0, 0, "b", uptime=20.0)
    frame = compute(tr, 10.0 + 3600.0)
    assert frame.column("reconnects_1h")[0] == pytest.approx(math.exp(-1.0))
    assert frame.column("reconnects_24h")[0] == pytest.approx(math.exp(-1 / 24))


def test_falling_battery_gives_a_negative_slope_and_hours_left() -> None:
    tr = SignalTracker()
    for k in range(600):  # 10 h at -2 %/h
        _beat(tr, "d", k * INTERVAL, k, battery_pct=80.0 - 2.0 * k / 60)
    frame = compute(tr, 599 * INTERVAL)
    assert frame.column("battery_slope")[0] == pytest.approx(-2.0, rel=0.1)
    assert frame.column("battery_hours_left")[0] == pytest.approx(60.0 / 2.0, rel=0.15)


def test_slowdown_raises_the_cusum() -> None:
    tr = SignalTracker()
    t = 0.0
    for k in range(60):
        _beat(tr, "d", t, k)
        t += INTERVAL * (1.0 if k < 30 else 1.5)
    assert tr.value("d", "cusum") == pytest.approx(29 * 0.35, rel=0.05)


def test_down_devices_are_not_scored_until_they_beat_again() -> None:
    tr = SignalTracker()
    _beat(tr, "d", 0.0, 0)
    _beat(tr, "e", 0.0, 0)
    tr.transition(
        Transition("d", State.ONLINE, State.STALE, Reason.STOPPED_BEATING, 0.0, "a"), 200.0
    )
    assert compute(tr, 300.0).device_ids == ["e"]
    _beat(tr, "d", 400.0, 1)
    assert sorted(compute(tr, 500.0).device_ids) == ["d", "e"]


def test_jitter_is_measured_against_the_class() -> None:
    tr = SignalTracker()
    for dev in ("a", "b", "c"):
        for k in range(200):
            _beat(tr, dev, k * INTERVAL + (k % 2) * 0.6, k)  # 1 % jitter
    t = 0.0
    for k in range(200):
        _beat(tr, "x", t, k)
        t += INTERVAL * (0.7 if k % 2 else 1.3)
    frame = compute(tr, t)
    ratio = dict(zip(frame.device_ids, frame.column("jitter_vs_class"), strict=True))
    assert ratio["x"] > 10 * ratio["a"]


def test_metric_names_and_odd_values() -> None:
    assert metric_value({"battery": 40}, ("battery_pct", "battery")) == 40.0
    assert math.isnan(metric_value({"battery": True}, ("battery",)))
    assert math.isnan(metric_value({"battery": "full"}, ("battery",)))
    assert math.isnan(metric_value({"battery": float("nan")}, ("battery",)))


def test_rules_give_reasons_in_words() -> None:
    tr = SignalTracker()
    t = 0.0
    for k in range(300):
        _beat(tr, "d", t, 0 if k % 50 == 0 else k, f"s{k // 50}" if k >= 200 else "s0",
              uptime=t + 100, battery_pct=max(30.0 - k * 0.1, 1.0))  # fmt: skip
        t += INTERVAL
    for k in range(6):  # six reconnects in the last few minutes
        _beat(tr, "d", t, 0, f"r{k}", uptime=t + 100, battery_pct=1.0)
        t += 10.0
    for other in ("e", "f"):
        for k in range(int(t // INTERVAL) + 1):
            _beat(tr, other, k * INTERVAL, k, battery_pct=90.0)
    frame = compute(tr, t)
    s = strengths(frame)
    row = frame.device_ids.index("d")
    words = reasons(frame, s, row)
    assert any("reconnects in the last hour" in w for w in words), words
    assert any(w.startswith("battery ") and "within the hour" in w for w in words), words
    assert scores(s)[row] > 1.0
    healthy = frame.device_ids.index("e")
    assert scores(s)[healthy] < 0.5
    assert reasons(frame, s, healthy) == []


def test_a_blind_period_is_no_silence_no_missed_beats_and_no_reconnect() -> None:
    tr = SignalTracker()
    _beat(tr, "d", 0.0, 0, "a", uptime=100.0)
    _beat(tr, "d", INTERVAL, 1, "a", uptime=160.0)
    tr.resumed(1000.0)  # the monitor was blind from about 100 s to 1000 s
    frame = compute(tr, 1030.0)
    assert frame.column("silence")[0] == pytest.approx(0.5)
    _beat(tr, "d", 1050.0, 0, "b", uptime=1150.0)  # the broker restarted: a new session
    assert tr.value("d", "missed_s") == 0.0
    assert tr.value("d", "reconn_s") == 0.0
    assert tr.value("d", "r_s") == pytest.approx(1.0)  # the blind gap left out
    _beat(tr, "d", 1050.0 + INTERVAL, 1, "b", uptime=1210.0)
    assert tr.value("d", "r_s") == pytest.approx(1.0)


def test_a_forgotten_device_is_no_longer_scored() -> None:
    tr = SignalTracker()
    _beat(tr, "d", 0.0, 0)
    _beat(tr, "e", 0.0, 0)
    tr.forget("d")
    assert compute(tr, 10.0).device_ids == ["e"]
    _beat(tr, "d", 20.0, 0)  # it came back: a fresh history
    assert sorted(compute(tr, 30.0).device_ids) == ["d", "e"]
    assert tr.value("d", "beats") == 1.0

"""The device core, driven step by step with explicit times (no broker, no threads)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from device_client import protocol
from device_client.backoff import Backoff
from device_client.core import DeviceCore, Phase

ID = "pump-7"
TOPICS = protocol.Topics()


class _Max(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def _core(interval: float = 10.0, **kwargs: Any) -> DeviceCore:
    rng = _Max()
    kwargs.setdefault("backoff", Backoff(base=0.5, cap=30.0, rng=rng))
    return DeviceCore(device_id=ID, interval=interval, now=0.0, rng=rng, **kwargs)


def _phase(core: DeviceCore) -> Phase:
    # A function call, so the type checker does not carry an earlier narrowing over.
    return core.phase


def _connected(core: DeviceCore, now: float = 1.0) -> None:
    core.start(now - 1.0 if now >= 1.0 else 0.0)
    core.begin_connect(now)
    core.connected_now(now)


def test_will_is_made_before_connecting_and_names_the_new_session() -> None:
    core = _core()
    core.start(0.0)
    assert core.next_deadline() == 0.0
    will = core.begin_connect(0.0)
    assert core.phase is Phase.CONNECTING
    assert will.topic == TOPICS.presence(ID)
    assert (will.qos, will.retain) == (1, True)
    presence = protocol.decode_presence(will.payload)
    assert presence.state is protocol.PresenceState.OFFLINE
    assert presence.reason is protocol.OfflineReason.CONNECTION_LOST
    assert presence.session == core.session


def test_connect_publishes_online_and_beats_from_seq_zero_at_once() -> None:
    core = _core()
    core.start(0.0)
    core.begin_connect(0.0)
    online = core.connected_now(0.5)
    assert online.topic == TOPICS.presence(ID)
    assert (online.qos, online.retain) == (1, True)
    assert protocol.decode_presence(online.payload).state is protocol.PresenceState.ONLINE
    assert core.config_topic == TOPICS.config(ID)
    assert core.beat_due(0.5)
    beat = core.heartbeat(0.5, 1_700_000_000.0, None)
    assert beat.message.topic == TOPICS.heartbeat(ID)
    assert (beat.message.qos, beat.message.retain) == (1, True)
    hb = protocol.decode_heartbeat(beat.message.payload)
    assert (hb.seq, hb.session, hb.interval) == (0, core.session, 10.0)
    assert hb.ts == 1_700_000_000.0
    assert hb.uptime == 0.5
    assert core.next_deadline() == 10.5


def test_every_reconnect_has_a_new_session_and_restarts_seq() -> None:
    core = _core(interval=1.0)
    _connected(core, 1.0)
    first = core.session
    for t in (1.0, 2.0, 3.0):
        core.heartbeat(t, t, None)
    assert core.seq == 3
    delay = core.connection_lost(3.5)
    assert delay is not None
    assert core.phase is Phase.WAITING
    assert core.next_deadline() == 3.5 + delay
    will = core.begin_connect(5.0)
    assert core.session != first
    assert protocol.decode_presence(will.payload).session == core.session
    core.connected_now(5.1)
    beat = core.heartbeat(5.1, 5.1, None)
    hb = protocol.decode_heartbeat(beat.message.payload)
    assert (hb.seq, hb.session) == (0, core.session)


def test_failed_attempts_back_off_until_a_stable_connection_resets() -> None:
    core = _core(stable_after=10.0)
    core.start(0.0)
    delays = []
    now = 0.0
    for _ in range(4):
        core.begin_connect(now)
        delay = core.connection_lost(now)
        assert delay is not None
        delays.append(delay)
        now += delay
    assert delays == [0.5, 1.0, 2.0, 4.0]
    # Accepted, then dropped at once (a kick, a duplicate client id): keep backing off.
    core.begin_connect(now)
    core.connected_now(now)
    assert core.connection_lost(now + 1.0) == 8.0
    # A connection that stayed up resets the backoff.
    now += 20.0
    core.begin_connect(now)
    core.connected_now(now)
    assert core.connection_lost(now + 60.0) == 0.5


def test_config_changes_interval_within_one_beat() -> None:
    core = _core(interval=30.0)
    _connected(core, 0.0)
    core.heartbeat(0.0, 0.0, None)
    outcome = core.apply_config(b'{"interval": 5}', now=2.0)
    assert (outcome.interval, outcome.changed, outcome.problem) == (5.0, True, None)
    assert core.next_deadline() == 5.0
    hb = protocol.decode_heartbeat(core.heartbeat(5.0, 5.0, None).message.payload)
    assert hb.interval == 5.0
    assert core.next_deadline() == 10.0


def test_same_interval_config_changes_nothing() -> None:
    core = _core(interval=30.0)
    _connected(core, 0.0)
    core.heartbeat(0.0, 0.0, None)
    outcome = core.apply_config(b'{"interval": 30}', now=1.0)
    assert not outcome.changed
    assert core.next_deadline() == 30.0


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"interval": "fast"}',
        b'{"interval": 0}',
        b'{"interval": true}',
        b'{"other": 1}',
        b"\xff\xfe",
        b'{"interval": 1e999}',
    ],
)
def test_malformed_config_is_refused_and_changes_nothing(payload: bytes) -> None:
    core = _core(interval=30.0)
    _connected(core, 0.0)
    core.heartbeat(0.0, 0.0, None)
    outcome = core.apply_config(payload, now=1.0)
    assert outcome.problem
    assert not outcome.changed
    assert core.interval == 30.0
    assert core.next_deadline() == 30.0


def test_cleared_config_restores_the_devices_own_interval() -> None:
    core = _core(interval=30.0)
    _connected(core, 0.0)
    core.heartbeat(0.0, 0.0, None)
    core.apply_config(b'{"interval": 2}', now=0.5)
    outcome = core.apply_config(b"", now=1.0)
    assert (outcome.cleared, outcome.changed, outcome.interval) == (True, True, 30.0)
    assert core.interval == 30.0


def test_configured_interval_survives_a_reconnect() -> None:
    core = _core(interval=30.0)
    _connected(core, 0.0)
    core.apply_config(b'{"interval": 2}', now=0.5)
    core.connection_lost(1.0)
    core.begin_connect(2.0)
    core.connected_now(2.0)
    hb = protocol.decode_heartbeat(core.heartbeat(2.0, 2.0, None).message.payload)
    assert hb.interval == 2.0


def test_metrics_are_included_and_bad_metrics_are_left_out() -> None:
    core = _core(interval=1.0, fw="1.4.2")
    _connected(core, 0.0)
    good = core.heartbeat(0.0, 0.0, {"rssi": -61, "temp_c": 41.5})
    assert good.metrics_problem is None
    body = json.loads(good.message.payload)
    assert body["metrics"] == {"rssi": -61, "temp_c": 41.5}
    assert body["fw"] == "1.4.2"
    for bad in ({"x": object()}, {"nan": float("nan")}, {"big": "x" * 5000}, 42):
        beat = core.heartbeat(core.next_deadline() or 0.0, 0.0, bad)  # type: ignore[arg-type]
        assert beat.metrics_problem
        hb = protocol.decode_heartbeat(beat.message.payload)
        assert hb.metrics == {}
        assert hb.seq == beat.seq


def test_muted_device_stays_connected_but_has_no_beats_due() -> None:
    core = _core(interval=1.0)
    _connected(core, 0.0)
    core.mute()
    assert core.connected
    assert not core.beat_due(100.0)
    assert core.next_deadline() is None


def test_stop_when_connected_announces_shutdown_with_a_deadline() -> None:
    core = _core(interval=1.0)
    _connected(core, 0.0)
    message = core.begin_stop(3.0, timeout=5.0)
    assert message is not None
    presence = protocol.decode_presence(message.payload)
    assert presence.reason is protocol.OfflineReason.SHUTDOWN
    assert presence.session == core.session
    assert (message.qos, message.retain) == (1, True)
    assert core.phase is Phase.STOPPING
    assert not core.beat_due(100.0)
    assert core.next_deadline() == 8.0
    assert core.begin_stop(4.0, timeout=5.0) is None  # a second stop changes nothing
    assert core.phase is Phase.STOPPING
    # The clean disconnect (or a drop after the deadline) ends it; no reconnect follows.
    assert core.connection_lost(4.0) is None
    assert _phase(core) is Phase.STOPPED
    assert core.next_deadline() is None


def test_stop_when_not_connected_stops_at_once_without_a_message() -> None:
    core = _core()
    core.start(0.0)
    assert core.begin_stop(0.0, timeout=5.0) is None
    assert core.phase is Phase.STOPPED
    assert core.next_deadline() is None


def test_abandoned_device_never_reconnects() -> None:
    core = _core()
    _connected(core, 0.0)
    core.abandon()
    assert core.connection_lost(1.0) is None
    assert core.phase is Phase.STOPPED


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"device_id": "a/b"}, protocol.InvalidDeviceId),
        ({"device_id": ""}, protocol.InvalidDeviceId),
        ({"interval": 0.0}, protocol.InvalidPayload),
        ({"jitter": -1.0}, ValueError),
        ({"fw": "x" * 65}, ValueError),
        ({"connect_timeout": 0.0}, ValueError),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    args: dict[str, Any] = {"device_id": ID, "interval": 10.0, "now": 0.0, "rng": random.Random()}
    args.update(kwargs)
    with pytest.raises(error):
        DeviceCore(**args)


def test_out_of_order_calls_are_programming_errors() -> None:
    core = _core()
    with pytest.raises(RuntimeError):
        core.begin_connect(0.0)
    core.start(0.0)
    with pytest.raises(RuntimeError):
        core.start(0.0)
    with pytest.raises(RuntimeError):
        core.connected_now(0.0)
    with pytest.raises(RuntimeError):
        core.heartbeat(0.0, 0.0, None)

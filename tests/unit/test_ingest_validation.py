"""Ingest: every kind of bad input is counted and dropped; good input reaches the engine."""

from __future__ import annotations

import json
import logging

import pytest

from device_client.protocol import Heartbeat, Presence, Topics
from monitor.ingest import Ingest
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.outcomes import EventResult
from monitor.liveness.states import State

T = Topics()


class EngineSink:
    """The real engine behind the sink interface, as the service wires it."""

    def __init__(self) -> None:
        self.engine = LivenessEngine(default_interval=1)

    def heartbeat(
        self, device_id: str, hb: Heartbeat, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        return self.engine.heartbeat(device_id, hb, now, wall, retained=retained)

    def presence(
        self, device_id: str, presence: Presence, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        return self.engine.presence(device_id, presence, now, wall, retained=retained)


@pytest.fixture
def sink() -> EngineSink:
    return EngineSink()


@pytest.fixture
def ingest(sink: EngineSink) -> Ingest:
    return Ingest(T, sink, logging.getLogger("test.ingest"))


def hb(seq: int, session: str = "s1", **extra: object) -> bytes:
    return json.dumps({"seq": seq, "session": session, "interval": 1, **extra}).encode()


@pytest.mark.parametrize(
    ("topic", "payload", "counter"),
    [
        (T.heartbeat("d1"), b"{not json", "invalid_payload"),
        (T.heartbeat("d1"), b"\xff\xfe", "invalid_payload"),
        (T.heartbeat("d1"), b"[1, 2]", "invalid_payload"),
        (T.heartbeat("d1"), b'{"seq": "1", "session": "s1", "interval": 1}', "invalid_payload"),
        (T.heartbeat("d1"), b'{"seq": -1, "session": "s1", "interval": 1}', "invalid_payload"),
        (T.heartbeat("d1"), b'{"seq": 1, "session": "s/1", "interval": 1}', "invalid_payload"),
        (T.heartbeat("d1"), b'{"seq": 1, "session": "s1", "interval": true}', "invalid_payload"),
        (T.heartbeat("d1"), b'{"seq": 1, "session": "s1", "interval": 0}', "invalid_payload"),
        (
            T.heartbeat("d1"),
            b'{"seq": 1, "session": "s1", "interval": 1, "metrics": 3}',
            "invalid_payload",
        ),
        (T.heartbeat("d1"), hb(1, metrics={"blob": "x" * 5000}), "oversized"),
        (T.presence("d1"), b'{"state": "sleeping", "session": "s1"}', "invalid_payload"),
        (
            T.presence("d1"),
            b'{"state": "offline", "session": "s1", "reason": "x"}',
            "invalid_payload",
        ),
        ("clawbeat/v1/devices/" + "x" * 65 + "/heartbeat", hb(1), "bad_device_id"),
        ("clawbeat/v1/devices/bad id/heartbeat", hb(1), "bad_device_id"),
        ("clawbeat/v1/devices/d1/heartbeat/extra", hb(1), "bad_topic"),
        ("clawbeat/v1/devices/d1/firmware", hb(1), "bad_topic"),
        ("elsewhere/d1/heartbeat", hb(1), "bad_topic"),
    ],
)
def test_bad_input_is_counted_and_dropped(
    ingest: Ingest, sink: EngineSink, topic: str, payload: bytes, counter: str
) -> None:
    ingest.handle(topic, payload, False, 10.0, 1000.0)
    assert ingest.counts[counter] == 1
    assert sink.engine.snapshot("d1") is None
    # The pipeline still works after the garbage.
    ingest.handle(T.heartbeat("d1"), hb(0), False, 11.0, 1001.0)
    snap = sink.engine.snapshot("d1")
    assert snap is not None
    assert snap.state is State.ONLINE


def test_duplicates_and_out_of_order_change_nothing(ingest: Ingest, sink: EngineSink) -> None:
    ingest.handle(T.heartbeat("d1"), hb(5), False, 10.0, 1000.0)
    before = sink.engine.snapshot("d1")
    ingest.handle(T.heartbeat("d1"), hb(5), False, 10.5, 1000.5)
    ingest.handle(T.heartbeat("d1"), hb(3), False, 10.6, 1000.6)
    assert ingest.counts["heartbeat_duplicate"] == 2
    assert sink.engine.snapshot("d1") == before


def test_retained_replay_is_a_claim(ingest: Ingest, sink: EngineSink) -> None:
    ingest.handle(T.heartbeat("d2"), hb(9), True, 10.0, 1000.0)
    snap = sink.engine.snapshot("d2")
    assert snap is not None
    assert snap.state is State.UNKNOWN
    assert ingest.counts["heartbeat_retained-claim"] == 1


def test_cleared_retained_presence_is_ignored(ingest: Ingest, sink: EngineSink) -> None:
    ingest.handle(T.presence("d3"), b"", True, 10.0, 1000.0)
    assert ingest.counts["presence_cleared"] == 1
    assert sink.engine.snapshot("d3") is None


@pytest.mark.parametrize(
    "payload",
    [
        # Not strict JSON, but what some device libraries write for a failed reading: a
        # strange metric must not cost the heartbeat (the device would look dead).
        b'{"seq": 1, "session": "s1", "interval": 1, "metrics": {"t": NaN, "v": -Infinity}}',
        # A lone surrogate escape in a free-form string, likewise.
        b'{"seq": 1, "session": "s1", "interval": 1, "fw": "v\\ud800"}',
        # Integers beyond 64 bits in a metric (kept as a float: digits beyond 17 lost).
        b'{"seq": 1, "session": "s1", "interval": 1, "metrics": {"n": 123456789012345678901234}}',
    ],
    ids=["non-finite metrics", "lone surrogate", "huge integer"],
)
def test_odd_but_harmless_heartbeats_are_accepted(
    ingest: Ingest, sink: EngineSink, payload: bytes
) -> None:
    ingest.handle(T.heartbeat("d1"), payload, False, 10.0, 1000.0)
    assert ingest.counts["heartbeat_accepted"] == 1, ingest.counts
    snap = sink.engine.snapshot("d1")
    assert snap is not None
    assert snap.state is State.ONLINE

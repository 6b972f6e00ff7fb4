"""Heartbeat and presence decoding: the rules of docs/protocol.md, at their edges.

Decoding takes a typed fast path and falls back to decode-then-check for whatever that
refuses; these cases sit where the two could disagree.
"""

from __future__ import annotations

import pytest

from device_client import protocol
from device_client.protocol import (
    MAX_METRICS_DEPTH,
    InvalidDeviceId,
    InvalidPayload,
    OfflineReason,
    PresenceState,
)


def beat(extra: str = "", *, session: str = "s1", interval: str = "1") -> bytes:
    return f'{{"seq": 1, "session": "{session}", "interval": {interval}{extra}}}'.encode()


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def _list_nest(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_plain_heartbeat_decodes_every_field() -> None:
    hb = protocol.decode_heartbeat(
        beat(', "ts": 1.5, "uptime": 2, "fw": "1.0", "metrics": {"rssi": -61}, "extra": [1]')
    )
    assert hb == protocol.Heartbeat(1, "s1", 1.0, 1.5, 2.0, "1.0", {"rssi": -61})
    assert isinstance(hb.interval, float)
    assert isinstance(hb.uptime, float)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (', "metrics": {"a": ' + nested(MAX_METRICS_DEPTH) + "}", "metrics"),
        (', "fw": "' + "é" * 65 + '"', "fw"),
        (', "uptime": -1', "uptime"),
        (', "ts": 1e400', "ts"),
        (', "ts": "5"', "ts"),
        (', "metrics": [1]', "metrics"),
    ],
    ids=["metrics too deep", "fw too long", "negative uptime", "infinite ts", "text ts", "list"],
)
def test_field_rules_are_refused_with_the_field_named(extra: str, field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        protocol.decode_heartbeat(beat(extra))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_limits_are_inclusive() -> None:
    deepest = protocol.decode_heartbeat(
        beat(', "metrics": {"a": ' + nested(MAX_METRICS_DEPTH - 1) + "}")
    )
    # The metrics object is level 1: MAX_METRICS_DEPTH - 1 lists inside it are the limit.
    assert deepest.metrics == {"a": _list_nest(MAX_METRICS_DEPTH - 1)}
    assert protocol.decode_heartbeat(beat(', "fw": "' + "é" * 64 + '"')).fw == "é" * 64
    assert protocol.decode_heartbeat(beat(interval="0.1")).interval == 0.1
    assert protocol.decode_heartbeat(beat(interval="86400")).interval == 86_400.0
    assert protocol.decode_heartbeat(beat(session="a" * 64)).session == "a" * 64
    top = protocol.decode_heartbeat(b'{"seq": 9223372036854775807, "session": "s", "interval": 1}')
    assert top.seq == protocol.MAX_SEQ


@pytest.mark.parametrize(
    "payload",
    [
        beat(interval="0.0999"),
        beat(interval="86400.5"),
        beat(interval="true"),
        b'{"seq": 9223372036854775808, "session": "s", "interval": 1}',
        b'{"seq": 1.0, "session": "s", "interval": 1}',
        b'{"session": "s", "interval": 1}',
        b'{"seq": 1, "session": "s"}',
    ],
)
def test_out_of_range_envelopes_are_refused(payload: bytes) -> None:
    with pytest.raises(InvalidPayload):
        protocol.decode_heartbeat(payload)


@pytest.mark.parametrize("session", ["a" * 65, "", "s\\n", "s/1"])
def test_a_bad_session_is_an_invalid_id(session: str) -> None:
    with pytest.raises(InvalidDeviceId):
        protocol.decode_heartbeat(beat(session=session))


def test_deep_nesting_anywhere_is_refused_not_a_crash() -> None:
    # In a field the monitor ignores, too: decoding it would recurse as deep.
    with pytest.raises(InvalidPayload, match="nested too deeply"):
        protocol.decode_heartbeat(beat(', "extra": ' + nested(1500)))
    with pytest.raises(InvalidPayload, match="nested too deeply"):
        protocol.decode_presence(
            b'{"state": "online", "session": "s", "x": ' + nested(1500).encode() + b"}"
        )


def test_lenient_json_is_still_accepted() -> None:
    hb = protocol.decode_heartbeat(beat(', "metrics": {"t": NaN}, "fw": "v\\ud800"'))
    assert hb.fw == "v\ufffd"
    assert protocol.decode_heartbeat(beat(', "metrics": null')).metrics == {}
    big = protocol.decode_heartbeat(beat(', "metrics": {"n": 123456789012345678901234}'))
    assert big.metrics["n"] == pytest.approx(1.2345678901234568e23)


def test_presence_reason_rules() -> None:
    gone = protocol.decode_presence(b'{"state": "offline", "session": "s"}')
    assert gone.reason is OfflineReason.CONNECTION_LOST
    done = protocol.decode_presence(b'{"state": "offline", "session": "s", "reason": "shutdown"}')
    assert done.reason is OfflineReason.SHUTDOWN
    # An online presence has no reason, whatever it carries.
    up = protocol.decode_presence(b'{"state": "online", "session": "s", "reason": "bogus"}')
    assert up.state is PresenceState.ONLINE
    assert up.reason is None
    for bad in (b'"reason": null', b'"reason": "bogus"'):
        with pytest.raises(InvalidPayload) as caught:
            protocol.decode_presence(b'{"state": "offline", "session": "s", ' + bad + b"}")
        assert caught.value.field == "reason"
    with pytest.raises(InvalidPayload, match="state"):
        protocol.decode_presence(b'{"state": "Online", "session": "s"}')
    with pytest.raises(InvalidDeviceId):
        protocol.decode_presence(b'{"state": "online", "session": "s\\n"}')

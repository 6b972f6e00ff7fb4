"""End to end: bad input from the network changes nothing and never stops the monitor.

A provisioned device (the ACL only lets it write its own topics) sends duplicates,
out-of-order sequence numbers, malformed JSON, wrong types and oversized payloads;
users whose names are not valid device ids publish on their own (hostile) topics. The
monitor must drop all of it, keep every device's state, and go on accepting valid
heartbeats.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_client.protocol import Heartbeat, Presence, Topics
from monitor.ingest import Ingest
from monitor.liveness.outcomes import EventResult, Outcome
from tests.harness.monitor import (
    MonitorProcess,
    StatusWatch,
    StoredDevice,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 1,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "summary_interval": 1,
}

ROOT = "clawbeat/v1"


def _hb(seq: object, session: object = "g1", interval: object = 30, **extra: object) -> bytes:
    # interval 30: the device is never late during the test, so any transition is a bug.
    return json.dumps({"seq": seq, "session": session, "interval": interval, **extra}).encode()


BAD_HEARTBEATS: list[tuple[str, bytes]] = [
    ("duplicate", _hb(5)),
    ("out of order", _hb(3)),
    ("out of order, zero", _hb(0)),
    ("truncated JSON", b'{"seq": 6, "session": "g1", "interval": '),
    ("not JSON", b"beat!"),
    ("empty", b""),
    ("not UTF-8", b'\xff\xfe{"seq": 6}'),
    ("JSON array", b"[6, 7]"),
    ("JSON string", b'"hello"'),
    ("JSON null", b"null"),
    ("deeply nested", b"[" * 2000),
    (
        "deeply nested metrics",
        b'{"seq": 6, "session": "g1", "interval": 30, "metrics": {"a": '
        + b"[" * 1500
        + b"]" * 1500
        + b"}}",
    ),
    ("seq as string", _hb("6")),
    ("seq negative", _hb(-1)),
    ("seq float", _hb(6.5)),
    ("seq boolean", _hb(True)),
    ("seq huge", _hb(2**70)),
    ("seq missing", json.dumps({"session": "g1", "interval": 30}).encode()),
    ("session number", _hb(6, session=7)),
    ("session hostile", _hb(6, session="a/b#")),
    ("session too long", _hb(6, session="s" * 65)),
    ("interval string", _hb(6, interval="fast")),
    ("interval zero", _hb(6, interval=0)),
    ("interval huge", _hb(6, interval=1e9)),
    ("interval NaN", b'{"seq": 6, "session": "g1", "interval": NaN}'),
    ("interval missing", json.dumps({"seq": 6, "session": "g1"}).encode()),
    ("uptime negative", _hb(6, uptime=-5)),
    ("fw too long", _hb(6, fw="f" * 65)),
    ("metrics not an object", _hb(6, metrics=[1, 2])),
    ("metrics nested 33 levels", _hb(6, metrics={"deep": json.loads("[" * 32 + "]" * 32)})),
    # Over the protocol's 4 KiB, under the broker's 16 KiB: it reaches the monitor.
    ("oversized", _hb(6, fw="1.0", metrics={"pad": "x" * 6000})),
]

BAD_PRESENCES: list[tuple[str, bytes]] = [
    ("unknown state", b'{"state": "zombie", "session": "g1"}'),
    ("offline without session", b'{"state": "offline", "reason": "connection-lost"}'),
    ("unknown reason", b'{"state": "offline", "session": "g1", "reason": "tired"}'),
    ("truncated", b'{"state": "offl'),
    ("oversized", json.dumps({"state": "offline", "session": "g1", "x": "y" * 5000}).encode()),
    ("deeply nested", b"{" * 1500),
    # Well-formed, but naming a session that is not the device's: a stale will.
    ("stale will", b'{"state": "offline", "session": "old-1", "reason": "connection-lost"}'),
    ("stale shutdown", b'{"state": "offline", "session": "old-2", "reason": "shutdown"}'),
]

# Names the broker accepts as users (and so, through the ACL pattern, as topic levels)
# but the protocol refuses as device ids. '+', '#' and '/' cannot get this far: a topic
# name with a wildcard is a protocol error the broker disconnects for, and '/' makes
# another topic level, which the monitor's `devices/+/heartbeat` does not match; see
# test_ingest_drops_ids_the_broker_cannot_carry.
HOSTILE_USERS = ["bad id", "x" * 65, "pümpe-7", "semi;colon", "quote'id"]


@pytest.fixture
def monitor(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> Iterator[MonitorProcess]:
    proc = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    proc.start(probe=watch)
    yield proc
    proc.stop()


def _row_at_seq(database_url: str, device_id: str, seq: int) -> StoredDevice | None:
    row = read_devices(database_url).get(device_id)
    return row if row is not None and row.last_seq == seq else None


def _client(broker: TestBroker, user: str) -> MqttProbe:
    client = MqttProbe(broker.url(user), client_id=user)
    client.connect()
    return client


def test_garbage_changes_nothing_and_does_not_stop_the_monitor(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    dev, sentinel = "e2e-garbage-1", "e2e-sentinel-1"
    broker.add_devices([dev, sentinel, *HOSTILE_USERS], "secret-pw")
    hb_topic, presence_topic = f"{ROOT}/devices/{dev}/heartbeat", f"{ROOT}/devices/{dev}/presence"
    clients: list[MqttProbe] = []
    try:
        g = _client(broker, dev)
        clients.append(g)
        g.publish(presence_topic, b'{"state": "online", "session": "g1"}', retain=True)
        g.publish(hb_topic, _hb(5), retain=True)
        watch.wait_state(dev, "online", reason="first-seen")
        before = wait_until(
            lambda: _row_at_seq(database_url, dev, 5), 5, what="heartbeat 5 in the database"
        )

        for _, payload in BAD_HEARTBEATS:
            g.publish(hb_topic, payload)
        for _, payload in BAD_PRESENCES:
            g.publish(presence_topic, payload)
        for user in HOSTILE_USERS:
            hostile = _client(broker, user)
            clients.append(hostile)
            topic = f"{ROOT}/devices/{user}"
            hostile.publish(f"{topic}/presence", b'{"state": "online", "session": "h1"}')
            hostile.publish(f"{topic}/heartbeat", _hb(0, session="h1"), retain=True)

        # A sentinel device beats after all of that. The monitor handles messages in the
        # order the broker delivers them, and the sentinel's device row and the
        # garbage device's (had anything dirtied it) go out in the same flush.
        s = _client(broker, sentinel)
        clients.append(s)
        s.publish(f"{ROOT}/devices/{sentinel}/heartbeat", _hb(0, session="s1"))
        watch.wait_state(sentinel, "online", reason="first-seen")
        wait_until(lambda: sentinel in read_devices(database_url), 5, what="the sentinel row")

        assert monitor.running(), monitor.log_tail()
        devices = read_devices(database_url)
        assert devices[dev] == before  # same seq, last_seen, session, state
        assert [(t.old_state, t.new_state) for t in read_transitions(database_url, dev)] == [
            (None, "online")
        ]
        assert set(devices) == {dev, sentinel}  # no row for any hostile id
        assert {t.device_id for t in read_transitions(database_url)} == {dev, sentinel}
        assert set(watch.latest_all()) == {dev, sentinel}  # nor a status topic
        log = monitor.log_path.read_text(errors="replace")
        assert "hostile device id" in log
        assert "exceeds 4096 bytes" in log
        assert "not UTF-8 JSON" in log

        # Still working: a valid heartbeat is accepted and persisted.
        g.publish(hb_topic, _hb(6), retain=True)
        after = wait_until(
            lambda: _row_at_seq(database_url, dev, 6), 5, what="heartbeat 6 in the database"
        )
        assert after.last_seen is not None
        assert before.last_seen is not None
        assert after.last_seen > before.last_seen

        # Valid per the protocol but awkward for a database: NUL characters (PostgreSQL
        # text and jsonb refuse them), non-finite metrics, deep but legal nesting.
        awkward = [
            _hb(7, fw="a\u0000b"),
            _hb(8, metrics={"t": "x\u0000y", "n": 1e400}),
            # metrics is level 1, "deep" 2..32: the deepest the protocol allows.
            _hb(9, metrics={"deep": json.loads("[" * 31 + "]" * 31)}),
            _hb(10, fw="1.0", metrics={"rssi": -61}),
        ]
        for seq, payload in enumerate(awkward, start=7):
            # One at a time, so that each is written on its own flush.
            g.publish(hb_topic, payload, retain=True)
            wait_until(
                functools.partial(_row_at_seq, database_url, dev, seq),
                5,
                what=f"heartbeat {seq} in the database",
            )
        assert [(t.old_state, t.new_state) for t in read_transitions(database_url, dev)] == [
            (None, "online")
        ]
        assert "dropping device" not in monitor.log_path.read_text(errors="replace")
        assert monitor.running(), monitor.log_tail()
    finally:
        for client in clients:
            client.close()


# --- ids the broker cannot carry, through the monitor's ingest itself --------------------


class _RecordingSink:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def heartbeat(
        self, device_id: str, hb: Heartbeat, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        self.calls.append(device_id)
        return EventResult(Outcome.ACCEPTED)

    def presence(
        self, device_id: str, presence: Presence, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        self.calls.append(device_id)
        return EventResult(Outcome.ACCEPTED)


@pytest.mark.parametrize(
    "device_id",
    ["a+b", "#", "+", "a/b", "", " ", "x" * 65, "pümpe", "nul\x00", "tab\t", "ü" * 10],
)
@pytest.mark.parametrize("kind", ["heartbeat", "presence"])
def test_ingest_drops_ids_the_broker_cannot_carry(device_id: str, kind: str) -> None:
    # No MQTT client can publish on a topic with '+' or '#' and the monitor's
    # subscription never matches one with '/', so these are checked on the monitor's
    # ingest (what the MQTT link hands every message to), not through a broker.
    sink = _RecordingSink()
    ingest = Ingest(Topics(ROOT), sink, logging.getLogger("test.ingest"))
    payload = _hb(0) if kind == "heartbeat" else b'{"state": "online", "session": "s1"}'
    ingest.handle(f"{ROOT}/devices/{device_id}/{kind}", payload, False, 1.0, 1.0)
    assert sink.calls == []
    assert ingest.counts["bad_device_id"] + ingest.counts["bad_topic"] == 1

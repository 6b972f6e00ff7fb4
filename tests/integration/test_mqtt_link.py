"""The monitor's MQTT link against a real Mosquitto: delivery, order, flags, bad handlers.

The link hands paho's messages straight to its handler (``DirectClient``), bypassing
aiomqtt's message iterator; these tests pin down that nothing was lost by doing so:
every message arrives once and in order, retained replays are flagged, messages that
arrive before the service is ready are held rather than dropped, and a handler that
raises costs one message, not the connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from device_client.urls import parse_broker_url
from monitor.connect_failure import FailureKind
from monitor.mqtt_link import LinkOptions, MqttLink
from tests.harness.mosquitto import TestBroker
from tests.harness.nats import nats_server_binary
from tests.harness.nats_fleet import NatsBroker
from tests.mqtt_helpers import MqttProbe

pytestmark = pytest.mark.anyio

ROOT = "clawbeat/v1"


@dataclass
class Seen:
    topic: str
    payload: bytes
    retained: bool
    now: float
    wall: float


@dataclass
class Recorder:
    """The link's message handler: records, and raises for payloads it is told to."""

    raise_on: set[bytes] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)

    def __call__(self, topic: str, payload: bytes, retained: bool, now: float, wall: float) -> None:
        if payload in self.raise_on:
            raise RuntimeError("handler bug")
        self.seen.append(Seen(topic, payload, retained, now, wall))


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running_link(
    broker: TestBroker,
    handler: Recorder,
    *,
    on_connected_delay: float = 0.0,
    tls: bool = False,
) -> AsyncIterator[MqttLink]:
    async def connected() -> None:
        # The service does real work here (engine resume, presence); a delay widens the
        # window in which messages arrive before the handler is attached.
        await asyncio.sleep(on_connected_delay)

    link = MqttLink(
        LinkOptions(
            address=parse_broker_url(broker.url(tls=tls)),
            client_id=broker.monitor_user,
            keepalive=30,
            subscriptions=(f"{ROOT}/devices/+/heartbeat",),
            will_topic=f"{ROOT}/monitor/presence",
            will_payload=b'{"state": "offline"}',
            ca_file=str(broker.ca_file) if tls else None,
        ),
        on_message=handler,
        on_connected=connected,
        on_disconnected=lambda: None,
    )
    task = asyncio.create_task(link.run())
    try:
        await _until(lambda: link.connected)
        yield link
    finally:
        await link.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _device(broker: TestBroker, device_id: str) -> MqttProbe:
    password = broker.add_device(device_id)
    probe = MqttProbe(broker.url(device_id, password))
    probe.connect()
    return probe


def _beat(seq: int) -> bytes:
    return json.dumps({"seq": seq, "session": "s1", "interval": 30}).encode()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_every_message_arrives_once_in_order_with_receive_times(
    broker: TestBroker, device_id: str, tls: bool
) -> None:
    # 2,000 messages in a burst: many socket reads' worth, packets split across reads
    # (and, over TLS, across records), all of which must come out whole and in order.
    total = 2000
    recorder = Recorder()
    async with running_link(broker, recorder, tls=tls) as link:
        device = _device(broker, device_id)
        try:
            before = time.time()
            for seq in range(1, total + 1):
                device.client.publish(f"{ROOT}/devices/{device_id}/heartbeat", _beat(seq), qos=1)
            await _until(lambda: len(recorder.seen) >= total)
            await asyncio.sleep(0.3)  # anything extra (a duplicate delivery) shows up here
        finally:
            device.close()
        assert [json.loads(s.payload)["seq"] for s in recorder.seen] == list(range(1, total + 1))
        assert {s.topic for s in recorder.seen} == {f"{ROOT}/devices/{device_id}/heartbeat"}
        assert not any(s.retained for s in recorder.seen)
        assert all(before - 1 <= s.wall <= time.time() for s in recorder.seen)
        nows = [s.now for s in recorder.seen]
        assert nows == sorted(nows)
        assert link.connects == 1


async def test_retained_replay_is_flagged_and_held_until_the_service_is_ready(
    broker: TestBroker, device_id: str
) -> None:
    device = _device(broker, device_id)
    try:
        device.publish(f"{ROOT}/devices/{device_id}/heartbeat", _beat(7), retain=True)
    finally:
        device.close()
    recorder = Recorder()
    # The replay reaches the client while on_connected is still sleeping: it must be
    # held and delivered afterwards, not dropped and not delivered early.
    async with running_link(broker, recorder, on_connected_delay=0.5):
        await _until(lambda: len(recorder.seen) >= 1)
    [replayed] = recorder.seen
    assert replayed.retained
    assert json.loads(replayed.payload)["seq"] == 7


async def test_a_handler_that_raises_costs_one_message_not_the_connection(
    broker: TestBroker, device_id: str
) -> None:
    recorder = Recorder(raise_on={_beat(2)})
    async with running_link(broker, recorder) as link:
        device = _device(broker, device_id)
        try:
            for seq in (1, 2, 3):
                device.publish(f"{ROOT}/devices/{device_id}/heartbeat", _beat(seq))
            await _until(lambda: len(recorder.seen) >= 2)
        finally:
            device.close()
        assert [json.loads(s.payload)["seq"] for s in recorder.seen] == [1, 3]
        assert link.handler_errors == 1
        assert link.connects == 1
        assert link.connected


async def test_queued_publishes_all_reach_the_broker_and_the_latest_per_topic_wins(
    broker: TestBroker,
) -> None:
    # Many retained status topics at once (a mass outage), several updates to some of
    # them queued before the first went out: every topic must end at its latest value.
    topics = [f"{ROOT}/status/dev-{i:05d}" for i in range(3000)]
    async with running_link(broker, Recorder()) as link:
        for round_ in range(3):
            for topic in topics[: 1000 * (round_ + 1)]:
                link.publish(topic, f"{topic} v{round_}".encode())
            await asyncio.sleep(0)  # let some go out mid-way, as in service
        assert await link.flush(within=30), f"{link.pending} publishes still pending"
    ops = MqttProbe(broker.url(broker.ops_user))
    ops.connect()
    try:
        ops.subscribe(f"{ROOT}/status/#")
        ops.wait_for(lambda m: m.retain, count=len(topics))
    finally:
        ops.close()
    latest = {m.topic: m.payload.decode() for m in ops.messages if m.retain}
    # dev-00000..00999 saw rounds 0-2, 01000..01999 rounds 1-2, the rest round 2 only.
    assert latest == {t: f"{t} v2" for t in topics}


async def test_subscriptions_change_on_the_live_connection(
    broker: TestBroker, device_id: str
) -> None:
    heartbeats = f"{ROOT}/devices/+/heartbeat"
    presence = f"{ROOT}/devices/{device_id}/presence"
    device = _device(broker, device_id)
    try:
        device.publish(presence, b'{"state": "online", "session": "s1"}', retain=True)
        recorder = Recorder()
        async with running_link(broker, recorder) as link:
            # Added: the broker replays what it retains on the new filter, then delivers.
            await link.set_subscriptions((heartbeats, f"{ROOT}/devices/+/presence"))
            await _until(lambda: any(s.topic == presence for s in recorder.seen))
            assert [s.retained for s in recorder.seen] == [True]
            # Dropped: a presence published before a heartbeat (one publisher, so the
            # broker keeps that order) is not delivered once the heartbeat is.
            await link.set_subscriptions((heartbeats,))
            device.publish(presence, b'{"state": "online", "session": "s2"}')
            device.publish(f"{ROOT}/devices/{device_id}/heartbeat", _beat(1))
            await _until(lambda: len(recorder.seen) >= 2)
            assert [s.topic for s in recorder.seen] == [
                presence,
                f"{ROOT}/devices/{device_id}/heartbeat",
            ]
            assert link.connects == 1
            assert link.subscriptions == (heartbeats,)
    finally:
        device.publish(presence, b"", retain=True)
        device.close()


@pytest.fixture
def nats_one(tmp_path: Path) -> Iterator[NatsBroker]:
    if nats_server_binary() is None:
        pytest.fail("nats-server is not installed: `apt-get install nats-server`", pytrace=False)
    nats = NatsBroker(tmp_path / "nats", [], device_password="unused", size=1)
    nats.start()
    try:
        yield nats
    finally:
        nats.stop()


async def test_a_refused_subscription_keeps_the_link_down_and_says_why(
    nats_one: NatsBroker,
) -> None:
    # Connected without one of its subscriptions the monitor would hear nothing of those
    # devices and judge them dead: it stays down (blind), retrying, and says which one.
    # (nats-server refuses a subscription its permissions do not allow; Mosquitto grants
    # it and delivers nothing.)
    link = MqttLink(
        LinkOptions(
            address=parse_broker_url(nats_one.url()),
            client_id="monitor",
            keepalive=30,
            subscriptions=(f"{ROOT}/devices/+/heartbeat", "plant/+/status"),
            will_topic=f"{ROOT}/monitor/presence",
            will_payload=b'{"state": "offline"}',
            backoff_cap=0.5,
            protocol="3.1.1",
        ),
        on_message=Recorder(),
        on_connected=_nothing,
        on_disconnected=lambda: None,
    )
    task = asyncio.create_task(link.run())
    try:
        await _until(lambda: link.failures[FailureKind.SUBSCRIBE] >= 2, within=30)
        assert not link.connected
        assert link.connects == 0
        assert "plant/+/status" in str(link.last_failure)
    finally:
        await link.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _nothing() -> None:
    return None

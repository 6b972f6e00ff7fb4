"""What the MQTT link calls per message: protocol v1 itself until a source exists.

A monitor without sources must pay nothing for them on each message, and a source
stored while it runs (``SourceIngest.replace``) must start receiving its messages at
once; removing the last one hands the link back to protocol v1 alone.
"""

from __future__ import annotations

from monitor.sources.ingest import MessageHandler, route
from monitor.sources.tasmota import TasmotaAdapter
from monitor.sources.zigbee2mqtt import Zigbee2MqttAdapter
from tests.sources_rig import WALL0, Rig

ROOT = "clawbeat/v1"


class Link:
    """Holds what route() hands the link, and delivers through it as the link does."""

    def __init__(self) -> None:
        self.handlers: list[MessageHandler] = []
        self.v1_topics: list[str] = []

    def deliver_to(self, handler: MessageHandler) -> None:
        self.handlers.append(handler)

    def v1(self, topic: str, payload: bytes, retained: bool, now: float, wall: float) -> None:
        self.v1_topics.append(topic)

    def receive(self, t: float, topic: str, payload: bytes) -> None:
        self.handlers[-1](topic, payload, False, t, WALL0 + t)


def test_without_sources_the_link_calls_protocol_v1_itself() -> None:
    rig, link = Rig([]), Link()
    route(link.v1, rig.ingest, ROOT, link.deliver_to)
    assert link.handlers == [link.v1]
    link.receive(1, f"{ROOT}/devices/d1/heartbeat", b"{}")
    assert link.v1_topics == [f"{ROOT}/devices/d1/heartbeat"]


def test_a_source_stored_while_running_gets_its_messages_and_leaves_v1_to_itself() -> None:
    rig, link = Rig([]), Link()
    route(link.v1, rig.ingest, ROOT, link.deliver_to)

    rig.ingest.replace([TasmotaAdapter("tas", interval=10)])
    assert len(link.handlers) == 2
    assert link.handlers[-1] != link.v1
    link.receive(1, "tele/plug-1/STATE", b'{"UptimeSec": 5}')
    assert rig.counts("tas")["received"] == 1
    assert rig.state("plug-1") is not None
    link.receive(2, f"{ROOT}/devices/d1/heartbeat", b"{}")
    assert link.v1_topics == [f"{ROOT}/devices/d1/heartbeat"]

    # Another source set: the router stays (sources are re-read by it on each message).
    rig.ingest.replace([Zigbee2MqttAdapter("z2m", interval=10)])
    assert len(link.handlers) == 2

    rig.ingest.replace([])
    assert link.handlers[-1] == link.v1


def test_with_sources_from_the_start_the_router_is_in_place() -> None:
    rig, link = Rig([TasmotaAdapter("tas", interval=10)]), Link()
    route(link.v1, rig.ingest, ROOT, link.deliver_to)
    assert len(link.handlers) == 1
    assert link.handlers[0] != link.v1
    link.receive(1, "tele/plug-1/STATE", b'{"UptimeSec": 5}')
    assert rig.counts("tas")["received"] == 1

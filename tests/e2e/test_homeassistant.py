"""End to end: Home Assistant MQTT discovery through a real Mosquitto and a real monitor.

The discovery payloads are checked field by field against Home Assistant's documented
schema (the keys and values below are copied from its documentation, each with its
page), and their templates are rendered with Jinja2, the template engine Home Assistant
uses, against what the monitor really leaves on the broker: so "the binary sensor is off
once the device's will arrived" is shown on the status topic HA would read, not assumed.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from broker.acl import render_acl
from tests.harness.monitor import MonitorProcess, Spawned, StatusWatch, wait_until
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe, Received

FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 2,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "summary_interval": 1,
}
ROOT = "clawbeat/v1"
PREFIX = "homeassistant"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# ---------------------------------------------------------------- the documented schema

# https://www.home-assistant.io/integrations/mqtt/#discovery-topic :
# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, node and object ids
# "must only consist of characters from the character class [a-zA-Z0-9_-]".
DISCOVERY_TOPIC = re.compile(
    rf"{PREFIX}/(?P<component>binary_sensor|sensor)/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config"
)
# https://www.home-assistant.io/integrations/binary_sensor.mqtt/ (configuration variables)
BINARY_SENSOR_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "device", "device_class", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "expire_after", "force_update", "icon", "json_attributes_template",
    "json_attributes_topic", "name", "object_id", "off_delay", "payload_available",
    "payload_not_available", "payload_off", "payload_on", "platform", "qos", "state_topic",
    "unique_id", "value_template",
}  # fmt: skip
# https://www.home-assistant.io/integrations/sensor.mqtt/ (configuration variables)
SENSOR_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "device", "device_class", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "expire_after", "force_update", "icon", "json_attributes_template",
    "json_attributes_topic", "last_reset_value_template", "name", "object_id", "options",
    "payload_available", "payload_not_available", "platform", "suggested_display_precision",
    "qos", "state_class", "state_topic", "unique_id", "unit_of_measurement", "value_template",
}  # fmt: skip
# https://www.home-assistant.io/integrations/mqtt/#discovery-payload : every discovery
# payload may carry `origin` (name required; sw_version, support_url).
DISCOVERY_KEYS = {"origin"}
ORIGIN_KEYS, ORIGIN_REQUIRED = {"name", "sw_version", "support_url"}, {"name"}
# The `device` map of both pages above.
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
# The `availability` list items of both pages: topic required.
AVAILABILITY_KEYS = {"payload_available", "payload_not_available", "topic", "value_template"}
# https://www.home-assistant.io/integrations/binary_sensor/#device-class
BINARY_SENSOR_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving",
    "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety",
    "smoke", "sound", "tamper", "update", "vibration", "window",
}  # fmt: skip
# Templates (value_template & co.) and topics are strings; qos is 0, 1 or 2.
TEMPLATE_KEYS = {"value_template", "json_attributes_template", "availability_template"}
TOPIC_KEYS = {"state_topic", "json_attributes_topic", "availability_topic"}
CLAWBEAT_STATES = {"unknown", "online", "late", "stale", "offline", "lost", "maintenance"}


def check_schema(topic: str, payload: dict[str, Any], device_id: str) -> str:
    """Assert ``payload`` is a valid single-component discovery config; return its component."""
    match = DISCOVERY_TOPIC.fullmatch(topic)
    assert match, f"not a discovery topic: {topic}"
    component = match["component"]
    allowed = (BINARY_SENSOR_KEYS if component == "binary_sensor" else SENSOR_KEYS) | DISCOVERY_KEYS
    assert set(payload) <= allowed, f"undocumented keys: {set(payload) - allowed}"
    # `platform`: "Only allowed and required in MQTT auto discovery device messages".
    assert "platform" not in payload
    # state_topic is required: clawbeat's own retained status, nothing published for HA.
    assert payload["state_topic"] == f"{ROOT}/status/{device_id}"
    for key in TEMPLATE_KEYS & set(payload):
        assert isinstance(payload[key], str)
    for key in TOPIC_KEYS & set(payload):
        assert isinstance(payload[key], str)
        assert "+" not in payload[key]
        assert "#" not in payload[key]
    assert payload.get("qos", 0) in (0, 1, 2)
    # unique_id: the device map "only works when unique_id is set".
    assert isinstance(payload["unique_id"], str)
    assert payload["unique_id"]
    device = payload["device"]
    assert set(device) <= DEVICE_KEYS
    # "At least one of identifiers or connections must be present to identify the device."
    assert device.get("identifiers") or device.get("connections")
    assert all(isinstance(i, str) for i in device["identifiers"])
    assert device["name"] == device_id
    origin = payload["origin"]
    assert ORIGIN_REQUIRED <= set(origin) <= ORIGIN_KEYS
    assert origin["name"] == "clawbeat"
    # Availability: the list form (must not be used together with availability_topic).
    assert "availability_topic" not in payload
    assert payload.get("availability_mode", "latest") in ("all", "any", "latest")
    (availability,) = payload["availability"]
    assert set(availability) <= AVAILABILITY_KEYS
    assert "topic" in availability
    assert availability["topic"] == f"{ROOT}/monitor/presence"
    if component == "binary_sensor":
        assert payload["device_class"] in BINARY_SENSOR_DEVICE_CLASSES
        assert payload["device_class"] == "connectivity"
        assert isinstance(payload.get("payload_on", "ON"), str)
        assert isinstance(payload.get("payload_off", "OFF"), str)
    else:
        # `options`: "An empty list is not allowed. The sensor's device_class must be set
        # to enum. The options option cannot be used together with state_class or
        # unit_of_measurement."
        assert payload["device_class"] == "enum"
        assert payload["options"]
        assert all(isinstance(o, str) for o in payload["options"])
        assert set(payload["options"]) == CLAWBEAT_STATES
        assert "state_class" not in payload
        assert "unit_of_measurement" not in payload
        assert payload["json_attributes_topic"] == f"{ROOT}/status/{device_id}"
    return component


# ---------------------------------------------------------------- what HA would show

_JINJA = ImmutableSandboxedEnvironment()


def render(template: str, payload: bytes) -> str:
    """A template rendered as HA renders an MQTT one: ``value`` and ``value_json``."""
    text = payload.decode()
    return _JINJA.from_string(template).render(value=text, value_json=json.loads(text)).strip()


def binary_state(config: dict[str, Any], status: bytes) -> str:
    out = render(config["value_template"], status)
    if out == config.get("payload_on", "ON"):
        return "on"
    if out == config.get("payload_off", "OFF"):
        return "off"
    assert out == "None", out  # HA's PAYLOAD_NONE: unknown
    return "unknown"


def available(config: dict[str, Any], presence: bytes) -> bool:
    (av,) = config["availability"]
    out = render(av["value_template"], presence)
    assert out in (
        av.get("payload_available", "online"),
        av.get("payload_not_available", "offline"),
    )
    return bool(out == av.get("payload_available", "online"))


class HaView(MqttProbe):
    """Home Assistant's side: its own broker user, reading discovery, status and presence."""

    def __init__(self, broker: TestBroker, user: str) -> None:
        super().__init__(broker.url(user), client_id=user, keepalive=5)
        self.connect()
        # Presence last: the broker sends each subscription's retained messages in turn,
        # so once presence has arrived every retained discovery topic has too.
        for topic in (f"{PREFIX}/#", f"{ROOT}/status/#", f"{ROOT}/monitor/presence"):
            self.subscribe(topic)
        self.wait_for(lambda m: m.topic == f"{ROOT}/monitor/presence", 10)

    def configs(self) -> dict[str, dict[str, Any]]:
        """The discovery configs in force, as the last message on each topic says."""
        last: dict[str, Received] = {}
        for m in self.matching(lambda m: m.topic.startswith(f"{PREFIX}/")):
            last[m.topic] = m
        return {t: json.loads(m.payload) for t, m in last.items() if m.payload}

    def config(self, component: str, device_id: str) -> dict[str, Any] | None:
        for topic, payload in self.configs().items():
            if (
                topic.startswith(f"{PREFIX}/{component}/")
                and payload["device"]["name"] == device_id
            ):
                return payload
        return None

    def last(self, topic: str) -> bytes:
        return self.matching(lambda m: m.topic == topic)[-1].payload


def retained_discovery(broker: TestBroker) -> dict[str, dict[str, Any]]:
    """What the broker retains under the discovery prefix, seen by a new subscriber."""
    view = HaView(broker, "ha-check")
    try:
        return view.configs()
    finally:
        view.close()


@SQLITE_ONLY
def test_home_assistant_discovery_follows_the_fleet_and_the_monitor(
    broker: TestBroker, database_url: str, tmp_path: Path, spawned: Spawned, watch: StatusWatch
) -> None:
    old, new, third = "ha-known.1", "ha-new-1", "ha-known-3"
    broker.add_devices([old, new, third], "pw")
    # The ACL `clawbeat broker acl --homeassistant-prefix` writes: the monitor writes the
    # discovery topics, Home Assistant's user reads them with clawbeat's status.
    broker.process.acl_path.write_text(render_acl(ROOT, homeassistant_prefix=PREFIX))
    broker.add_device("homeassistant", "pw")  # a user with a password; the broker reloads
    broker.allow("ha-check", read=[f"{PREFIX}/#", f"{ROOT}/status/#", f"{ROOT}/monitor/#"])
    log = tmp_path / "monitor.log"

    # Devices the monitor knows before discovery is turned on.
    plain = MonitorProcess(broker, database_url, log, **FAST)
    plain.start(probe=watch)
    for known in (old, third):
        spawned.publish(known, "presence", json.dumps({"state": "online", "session": "s1"}))
        watch.wait_state(known, "online")
    assert plain.terminate() == 0
    assert retained_discovery(broker) == {}

    settings = {**FAST, "homeassistant_discovery": "true"}
    monitor = MonitorProcess(broker, database_url, log, **settings)
    ha = HaView(broker, "homeassistant")
    try:
        monitor.start(probe=watch)
        # Known at start: published.
        wait_until(
            lambda: all(ha.config("sensor", d) for d in (old, third)), 15, what="known devices"
        )
        # First heard now: published, with the firmware it announces.
        device = spawned.device(new, extra=("--fw", "2.4.1"))
        watch.wait_state(new, "online")

        # Its presence may come before its first heartbeat (and firmware): published at
        # once, then again with the firmware as the HA device's software version.
        def with_fw(component: str) -> dict[str, Any] | None:
            config = ha.config(component, new)
            return config if config and config["device"].get("sw_version") else None

        connectivity = wait_until(lambda: with_fw("binary_sensor"), 15, what="new device")
        state = wait_until(lambda: with_fw("sensor"), 15, what="new device's sensor")

        configs = ha.configs()
        assert len(configs) == 6  # two components for each of the three devices
        for topic, payload in configs.items():
            check_schema(topic, payload, payload["device"]["name"])
        # Both components of a device under one HA device; unique ids stable and distinct.
        assert connectivity["device"] == state["device"]
        assert connectivity["device"]["sw_version"] == "2.4.1"
        assert len({p["unique_id"] for p in configs.values()}) == 6
        assert len({json.dumps(p["device"]["identifiers"]) for p in configs.values()}) == 3
        # Retained, for an HA that starts later.
        assert retained_discovery(broker).keys() == configs.keys()

        # State from the status topic as HA renders it: online now...
        status_topic, presence_topic = f"{ROOT}/status/{new}", f"{ROOT}/monitor/presence"
        # (HA's connection may be a moment behind the watch's: wait for what it reads.)
        wait_until(lambda: ha.matching(lambda m: m.topic == status_topic), 10, what="status")
        wait_until(lambda: available(connectivity, ha.last(presence_topic)), 10, what="online")
        assert binary_state(connectivity, ha.last(status_topic)) == "on"
        assert render(state["value_template"], ha.last(status_topic)) == "online"
        # ...off with its reason once the device dies (its will, through the broker).
        device.send_signal(signal.SIGKILL)
        device.wait(10)
        watch.wait_state(new, "offline", reason="connection-lost")
        wait_until(
            lambda: json.loads(ha.last(status_topic))["state"] == "offline", 10, what="HA status"
        )
        assert binary_state(connectivity, ha.last(status_topic)) == "off"
        assert render(state["value_template"], ha.last(status_topic)) == "offline"
        attributes = json.loads(render(state["json_attributes_template"], ha.last(status_topic)))
        assert attributes["reason"] == "connection-lost"
        assert set(attributes) == {"reason", "since", "session", "interval", "class"}

        # The monitor dies: its will makes every entity unavailable, not offline.
        monitor.kill()
        wait_until(
            lambda: json.loads(ha.last(presence_topic))["state"] == "offline", 20, what="will"
        )
        assert not available(connectivity, ha.last(presence_topic))
        assert not available(state, ha.last(presence_topic))

        # Ops forget a device while no monitor runs: cleared from HA at the next start.
        monitor.cli("devices", "forget", third)
        monitor.start(probe=watch)
        wait_until(lambda: available(connectivity, ha.last(presence_topic)), 10, what="online")
        wait_until(lambda: ha.config("sensor", third) is None, 15, what="forgotten at start")
        assert ha.config("binary_sensor", third) is None

        # And one forgotten while it runs: HA's copy goes at once.
        old_status = f"{ROOT}/status/{old}"
        cleared_before = len(ha.matching(lambda m: not m.payload))
        monitor.cli("devices", "forget", old)
        wait_until(lambda: ha.config("sensor", old) is None, 15, what="forgotten device removed")
        assert ha.config("binary_sensor", old) is None

        # HA is told before the device's status is cleared, so it never reads an empty
        # status of an entity it still has.
        def cleared() -> list[str]:
            return [
                m.topic
                for m in ha.matching(lambda m: not m.payload)[cleared_before:]
                if m.topic.startswith(f"{PREFIX}/") or m.topic == old_status
            ]

        wait_until(lambda: old_status in cleared(), 10, what="status cleared")
        assert len(cleared()) == 3
        assert cleared()[-1] == old_status, cleared()
        assert {p["device"]["name"] for p in retained_discovery(broker).values()} == {new}
        assert monitor.terminate() == 0
    finally:
        ha.close()
        monitor.stop()

    # Discovery turned off again: what it had published is cleared.
    off = MonitorProcess(broker, database_url, log, **FAST)
    off.start(probe=watch)
    try:
        wait_until(lambda: retained_discovery(broker) == {}, 15, what="discovery cleared")
    finally:
        off.stop()

"""Home Assistant MQTT discovery payloads for a fleet device (pure: no I/O, no clock).

For each device two single-component discovery messages, both under one HA device:

* ``binary_sensor`` (device class ``connectivity``): on while clawbeat says ``online``
  or ``late``, off for ``stale``, ``offline`` and ``lost``, unknown otherwise;
* ``sensor`` (device class ``enum``): clawbeat's state, with the reason and the rest of
  the status as attributes.

Both read clawbeat's own retained ``status/{id}`` topic through templates, so nothing
is published per heartbeat for Home Assistant, and both take their availability from
the monitor's presence topic: while the monitor is down (its will says ``offline``) HA
shows the entities as unavailable rather than a fleet of offline devices.

Field names and values follow Home Assistant's documented schema:
https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery,
https://www.home-assistant.io/integrations/binary_sensor.mqtt/,
https://www.home-assistant.io/integrations/sensor.mqtt/. Single-component discovery
(rather than the newer device-based kind) so that older Home Assistant releases work.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from device_client.protocol import Topics
from monitor.liveness.states import State

COMPONENTS: Final = ("binary_sensor", "sensor")

# Topic levels HA accepts for <node_id> and <object_id> (its discovery docs).
_ID_CHARS: Final = re.compile(r"[^a-zA-Z0-9_-]")

# value_template output compared to payload_on / payload_off; "None" is the one string HA
# reads as "no value" (homeassistant/components/mqtt/const.py PAYLOAD_NONE): a device
# only claimed by a retained message, or in maintenance, is neither on nor off.
CONNECTIVITY_TEMPLATE: Final = (
    "{% if value_json.state in ['online', 'late'] %}ON"
    "{% elif value_json.state in ['stale', 'offline', 'lost'] %}OFF"
    "{% else %}None{% endif %}"
)
STATE_TEMPLATE: Final = "{{ value_json.state }}"
# Attributes: the status minus last_seen. HA writes a state change for every attribute
# change and its sensor docs advise against attributes that change at every update; the
# status is republished with a new last_seen about once a minute per beating device.
ATTRIBUTES_TEMPLATE: Final = (
    "{{ {'reason': value_json.reason, 'since': value_json.since, "
    "'session': value_json.session, 'interval': value_json.interval, "
    "'class': value_json['class']} | tojson }}"
)
MONITOR_AVAILABILITY_TEMPLATE: Final = "{{ value_json.state }}"


def ha_id(value: str) -> str:
    """``value`` as a discovery topic level (``[a-zA-Z0-9_-]``), distinct per value.

    Device ids and topic roots may hold ``.`` and ``/``, which HA refuses there: those
    become ``_`` and a short hash of the original is appended so that ``a.b`` and
    ``a_b`` stay two devices.
    """
    cleaned = _ID_CHARS.sub("_", value)
    if cleaned == value:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{cleaned}-{digest}"


@dataclass(frozen=True, slots=True)
class Target:
    """Where discovery goes: HA's prefix and the node level naming this clawbeat."""

    prefix: str
    node: str

    @classmethod
    def for_root(cls, prefix: str, topic_root: str) -> Target:
        # The node is the topic root, so two clawbeat installations on one broker (two
        # roots) publish under different topics and unique ids.
        return cls(prefix, ha_id(topic_root.replace("/", "_")))

    def topic(self, component: str, device_id: str) -> str:
        return f"{self.prefix}/{component}/{self.node}/{ha_id(device_id)}/config"

    def topics(self, device_id: str) -> tuple[str, ...]:
        return tuple(self.topic(c, device_id) for c in COMPONENTS)


def encode_targets(targets: set[Target]) -> str:
    """The targets discovery may be on the broker under, as recorded in the database."""
    return json.dumps(
        [{"prefix": t.prefix, "node": t.node} for t in sorted(targets, key=str)], sort_keys=True
    )


def decode_targets(text: str | None) -> set[Target]:
    """A record of :func:`encode_targets`; nothing for none or one that cannot be read."""
    if not text:
        return set()
    try:
        return {Target(str(item["prefix"]), str(item["node"])) for item in json.loads(text)}
    except (ValueError, TypeError, KeyError):
        return set()


def device_payloads(
    target: Target, topics: Topics, device_id: str, *, fw: str | None, version: str
) -> list[tuple[str, bytes]]:
    """The retained discovery messages (topic, payload) for one device."""
    base = f"{target.node}_{ha_id(device_id)}"
    device: dict[str, Any] = {"identifiers": [base], "name": device_id}
    if fw:
        device["sw_version"] = fw
    shared: dict[str, Any] = {
        "state_topic": topics.status(device_id),
        "availability": [
            {
                "topic": topics.monitor_presence,
                "value_template": MONITOR_AVAILABILITY_TEMPLATE,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        # The status topics are published at QoS 1.
        "qos": 1,
        "device": device,
        "origin": {"name": "clawbeat", "sw_version": version},
    }
    connectivity = {
        "name": "Connectivity",
        "unique_id": f"{base}_connectivity",
        "device_class": "connectivity",
        "value_template": CONNECTIVITY_TEMPLATE,
        "payload_on": "ON",
        "payload_off": "OFF",
        **shared,
    }
    state = {
        "name": "State",
        "unique_id": f"{base}_state",
        "device_class": "enum",
        "options": [s.value for s in State],
        "value_template": STATE_TEMPLATE,
        "json_attributes_topic": topics.status(device_id),
        "json_attributes_template": ATTRIBUTES_TEMPLATE,
        "icon": "mdi:heart-pulse",
        **shared,
    }
    return [
        (target.topic("binary_sensor", device_id), _dump(connectivity)),
        (target.topic("sensor", device_id), _dump(state)),
    ]


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()

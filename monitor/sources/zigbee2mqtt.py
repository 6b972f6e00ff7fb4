"""Zigbee2MQTT: ``{base}/{name}/availability``, ``{base}/bridge/state``, device messages.

Availability (retained) is Zigbee2MQTT's own verdict on a Zigbee device —
``{"state": "online"}`` / ``{"state": "offline"}``, or the bare words before 1.30. The
bridge's state topic is the bridge's birth and will. Every JSON message on
``{base}/{name}`` is the device reporting: a beat. Friendly names may contain '/', so the
name is everything between the base and the suffix. No session, no seq: see
``resolve.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from monitor.sources.base import as_metrics, json_object, split_under, too_large, word
from monitor.sources.events import Beat, Decoded, Ignored, Malformed, Offline, Online
from monitor.sources.resolve import SessionView
from monitor.sources.topics import make_device_id

# Topics below a device that are commands or legacy side channels, not the device talking.
_NOT_REPORTS: Final = frozenset({"set", "get", "action", "click"})


@dataclass(frozen=True)
class Zigbee2MqttAdapter:
    name: str
    interval: float = 3600.0
    base: str = "zigbee2mqtt"
    id_prefix: str = ""

    @property
    def filters(self) -> tuple[str, ...]:
        return (f"{self.base}/#",)

    @property
    def bridge_id(self) -> str:
        return make_device_id(self.id_prefix, *self.base.split("/"), "bridge") or "bridge"

    def decode(
        self, topic: str, payload: bytes, *, wall: float, view: SessionView
    ) -> Decoded | None:
        levels = split_under(topic, self.base)
        if levels is None:
            return None
        if levels[0] == "bridge":
            if levels != ["bridge", "state"]:
                return Ignored("bridge")  # info, devices, logging, responses
            return self._availability(self.bridge_id, payload)
        if levels[-1] == "availability" and len(levels) > 1:
            device_id = make_device_id(self.id_prefix, *levels[:-1])
            if device_id is None:
                return Malformed("bad_device_id", f"no device id from {topic!r}")
            return self._availability(device_id, payload)
        if levels[-1] in _NOT_REPORTS or (len(levels) > 1 and levels[-2] in ("set", "get")):
            return Ignored("command")
        device_id = make_device_id(self.id_prefix, *levels)
        if device_id is None:
            return Malformed("bad_device_id", f"no device id from {topic!r}")
        obj = json_object(payload)
        if isinstance(obj, Malformed):
            return obj
        return (Beat(device_id, metrics=as_metrics(obj, payload)),)

    @staticmethod
    def _availability(device_id: str, payload: bytes) -> Decoded:
        if not payload:
            return Ignored("cleared")
        big = too_large(payload)
        if big is not None:
            return big
        state = word(payload)
        if state is not None and state.startswith("{"):
            obj = json_object(payload)
            if isinstance(obj, Malformed):
                return obj
            raw = obj.get("state")
            state = raw.lower() if isinstance(raw, str) else None
        if state == "online":
            return (Online(device_id),)
        if state == "offline":
            return (Offline(device_id),)
        return Malformed("invalid_payload", "availability is neither online nor offline")

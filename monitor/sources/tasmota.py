"""Tasmota: ``tele/{topic}/LWT`` birth/will, ``tele/{topic}/STATE`` and ``SENSOR`` beats.

Tasmota's defaults (FullTopic ``%prefix%/%topic%/``): the LWT topic is retained and holds
``Online`` (published after connecting) or ``Offline`` (the will); STATE and SENSOR come
every TelePeriod (300 s unless changed). No session, no seq: see ``resolve.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.sources.base import as_metrics, json_object, split_under, word
from monitor.sources.events import Beat, Decoded, Ignored, Malformed, Offline, Online
from monitor.sources.resolve import SessionView
from monitor.sources.topics import make_device_id

DEFAULT_TELEPERIOD = 300.0


@dataclass(frozen=True)
class TasmotaAdapter:
    name: str
    interval: float = DEFAULT_TELEPERIOD
    prefix: str = "tele"
    id_prefix: str = ""
    online_payload: str = "online"
    offline_payload: str = "offline"

    @property
    def filters(self) -> tuple[str, ...]:
        return (f"{self.prefix}/+/LWT", f"{self.prefix}/+/STATE", f"{self.prefix}/+/SENSOR")

    def decode(
        self, topic: str, payload: bytes, *, wall: float, view: SessionView
    ) -> Decoded | None:
        levels = split_under(topic, self.prefix)
        if levels is None or len(levels) != 2 or levels[1] not in ("LWT", "STATE", "SENSOR"):
            return None
        device_id = make_device_id(self.id_prefix, levels[0])
        if device_id is None:
            return Malformed("bad_device_id", f"no device id from {levels[0]!r}")
        if levels[1] == "LWT":
            if not payload:
                return Ignored("cleared")  # a retained LWT removed by hand
            text = word(payload)
            if text == self.online_payload.lower():
                return (Online(device_id),)
            if text == self.offline_payload.lower():
                return (Offline(device_id),)
            return Malformed("invalid_payload", "LWT is neither Online nor Offline")
        obj = json_object(payload)
        if isinstance(obj, Malformed):
            return obj
        return (Beat(device_id, metrics=as_metrics(obj, payload)),)

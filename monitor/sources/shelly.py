"""Shelly Gen2+: ``{id}/online`` birth/will, ``{id}/events/rpc`` and ``{id}/status/*`` beats.

The ``online`` topic is retained: ``true`` after connecting, ``false`` as the will.
``events/rpc`` carries JSON-RPC notifications (NotifyStatus, NotifyFullStatus,
NotifyEvent) whose ``params.ts`` is the device clock; ``status/{component}`` appears when
"generic status update over MQTT" is on. No session, no seq: see ``resolve.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.sources.base import as_metrics, json_object, too_large, word
from monitor.sources.events import Beat, Decoded, Ignored, Malformed, Offline, Online
from monitor.sources.resolve import SessionView
from monitor.sources.topics import make_device_id


@dataclass(frozen=True)
class ShellyAdapter:
    name: str
    interval: float = 60.0
    root: str = ""
    id_prefix: str = ""

    @property
    def filters(self) -> tuple[str, ...]:
        base = f"{self.root}/" if self.root else ""
        return (f"{base}+/online", f"{base}+/events/rpc", f"{base}+/status/+")

    def decode(
        self, topic: str, payload: bytes, *, wall: float, view: SessionView
    ) -> Decoded | None:
        levels = topic.split("/")
        if self.root:
            root = self.root.split("/")
            if levels[: len(root)] != root:
                return None
            levels = levels[len(root) :]
        tail = levels[1:]
        if tail not in (["online"], ["events", "rpc"]) and not (
            len(tail) == 2 and tail[0] == "status"
        ):
            return None
        device_id = make_device_id(self.id_prefix, levels[0])
        if device_id is None:
            return Malformed("bad_device_id", f"no device id from {levels[0]!r}")
        if tail == ["online"]:
            if not payload:
                return Ignored("cleared")
            big = too_large(payload)
            if big is not None:
                return big
            text = word(payload)
            if text == "true":
                return (Online(device_id),)
            if text == "false":
                return (Offline(device_id),)
            return Malformed("invalid_payload", "online is neither true nor false")
        obj = json_object(payload)
        if isinstance(obj, Malformed):
            return obj
        ts = None
        if tail == ["events", "rpc"]:
            params = obj.get("params")
            raw = params.get("ts") if isinstance(params, dict) else None
            if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
                ts = float(raw)
        return (Beat(device_id, ts=ts, metrics=as_metrics(obj, payload)),)

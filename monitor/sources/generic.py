"""A rule for home-grown conventions: a topic filter, an id segment, optional JSON paths.

Every message matching ``topic`` is a beat of the device named by level ``id_segment``.
When the payload is a JSON object, ``seq``, ``session``, ``ts`` and ``interval`` are read
from dotted paths if configured (a missing or mistyped field is a malformed message: the
rule says it is there). An optional presence topic maps two payloads to birth and death.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from device_client.protocol import MAX_SEQ, is_valid_device_id
from monitor.sources.base import as_metrics, json_object, too_large, word
from monitor.sources.events import Beat, Decoded, Ignored, Malformed, Offline, Online
from monitor.sources.resolve import SessionView
from monitor.sources.topics import filter_matches, make_device_id


class _Missing:
    pass


_MISSING = _Missing()


def _lookup(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


@dataclass(frozen=True)
class GenericAdapter:
    name: str
    topic: str
    id_segment: int
    interval: float = 60.0
    json: bool = False
    """Require a JSON object payload (implied by any path)."""
    seq_path: str | None = None
    session_path: str | None = None
    ts_path: str | None = None
    interval_path: str | None = None
    presence_topic: str | None = None
    online_payload: str = "online"
    offline_payload: str = "offline"
    id_prefix: str = ""

    @property
    def filters(self) -> tuple[str, ...]:
        return (self.topic,) if self.presence_topic is None else (self.topic, self.presence_topic)

    @property
    def _wants_json(self) -> bool:
        return self.json or any(
            p is not None
            for p in (self.seq_path, self.session_path, self.ts_path, self.interval_path)
        )

    def decode(
        self, topic: str, payload: bytes, *, wall: float, view: SessionView
    ) -> Decoded | None:
        presence = self.presence_topic is not None and filter_matches(self.presence_topic, topic)
        if not presence and not filter_matches(self.topic, topic):
            return None
        levels = topic.split("/")
        if not -len(levels) <= self.id_segment < len(levels):
            return Malformed("bad_device_id", f"{topic!r} has no level {self.id_segment}")
        device_id = make_device_id(self.id_prefix, levels[self.id_segment])
        if device_id is None:
            return Malformed("bad_device_id", f"no device id from {topic!r}")
        big = too_large(payload)
        if big is not None:
            return big
        if presence:
            if not payload:
                return Ignored("cleared")
            text = word(payload)
            if text == self.online_payload.lower():
                return (Online(device_id),)
            if text == self.offline_payload.lower():
                return (Offline(device_id),)
            return Malformed("invalid_payload", "presence payload is neither online nor offline")
        if not self._wants_json:
            return (Beat(device_id),)
        obj = json_object(payload)
        if isinstance(obj, Malformed):
            return obj
        return self._beat(device_id, obj, payload)

    def _beat(self, device_id: str, obj: dict[str, Any], payload: bytes) -> Decoded:
        seq = session = ts = interval = None
        if self.seq_path is not None:
            raw = _lookup(obj, self.seq_path)
            if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_SEQ:
                return Malformed("invalid_payload", f"{self.seq_path}: not a seq")
            seq = raw
        if self.session_path is not None:
            raw = _lookup(obj, self.session_path)
            if isinstance(raw, int) and not isinstance(raw, bool):
                raw = str(raw)  # boot counters make fine sessions
            if not is_valid_device_id(raw):
                return Malformed("invalid_payload", f"{self.session_path}: not a session")
            session = raw
        if self.ts_path is not None:
            ts = _number(_lookup(obj, self.ts_path))
            if ts is None:
                return Malformed("invalid_payload", f"{self.ts_path}: not a timestamp")
        if self.interval_path is not None:
            interval = _number(_lookup(obj, self.interval_path))
            if interval is None or not 0.1 <= interval <= 86_400:
                return Malformed("invalid_payload", f"{self.interval_path}: not an interval")
        metrics = as_metrics(obj, payload)
        return (
            Beat(device_id, session=session, seq=seq, ts=ts, interval=interval, metrics=metrics),
        )


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return float(raw)

"""ESPHome: ``{node}/status`` birth (``online``) and will (``offline``), retained.

The node's topic prefix defaults to its name. Component states (``{node}/sensor/{name}/
state`` and the like, every update_interval) count as beats when ``beats`` is on.
No session, no seq: see ``resolve.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from monitor.sources.base import too_large, word
from monitor.sources.events import Beat, Decoded, Ignored, Malformed, Offline, Online
from monitor.sources.resolve import SessionView
from monitor.sources.topics import make_device_id

_COMPONENTS: Final = ("sensor", "binary_sensor", "text_sensor", "switch", "light", "fan")


@dataclass(frozen=True)
class ESPHomeAdapter:
    name: str
    interval: float = 60.0
    root: str = ""
    """Levels above the node prefix, if the nodes' topic_prefix is ``root/{node}``."""
    id_prefix: str = ""
    beats: bool = True

    @property
    def filters(self) -> tuple[str, ...]:
        base = f"{self.root}/" if self.root else ""
        status = (f"{base}+/status",)
        if not self.beats:
            return status
        return status + tuple(f"{base}+/{c}/+/state" for c in _COMPONENTS)

    def decode(
        self, topic: str, payload: bytes, *, wall: float, view: SessionView
    ) -> Decoded | None:
        levels = topic.split("/")
        if self.root:
            root = self.root.split("/")
            if levels[: len(root)] != root:
                return None
            levels = levels[len(root) :]
        if len(levels) == 2 and levels[1] == "status":
            kind = "status"
        elif self.beats and len(levels) == 4 and levels[1] in _COMPONENTS and levels[3] == "state":
            kind = "state"
        else:
            return None
        device_id = make_device_id(self.id_prefix, levels[0])
        if device_id is None:
            return Malformed("bad_device_id", f"no device id from {levels[0]!r}")
        big = too_large(payload)
        if big is not None:
            return big
        if kind == "state":
            return (Beat(device_id),)
        if not payload:
            return Ignored("cleared")
        text = word(payload)
        if text == "online":
            return (Online(device_id),)
        if text == "offline":
            return (Offline(device_id),)
        return Malformed("invalid_payload", "status is neither online nor offline")

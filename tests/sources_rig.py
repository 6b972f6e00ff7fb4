"""A real liveness engine behind source ingest, driven with explicit times (unit tests)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from device_client.protocol import Heartbeat, Presence
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.outcomes import EventResult
from monitor.liveness.states import State, Transition
from monitor.sources.base import Adapter
from monitor.sources.ingest import SourceIngest
from monitor.sources.resolve import engine_view

WALL0 = 1_800_000_000.0


class Rig:
    """``feed`` messages at monotonic ``t`` (wall = WALL0 + t); ``tick`` the engine."""

    def __init__(self, adapters: Sequence[Adapter], *, will_hold: float = 2.0) -> None:
        self.engine = LivenessEngine(default_interval=30, will_hold=will_hold)
        self.transitions: list[Transition] = []
        self.ingest = SourceIngest(
            adapters, self, engine_view(self.engine), logging.getLogger("test.sources")
        )

    # the sink, as the service implements it
    def heartbeat(
        self, device_id: str, hb: Heartbeat, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        result = self.engine.heartbeat(device_id, hb, now, wall, retained=retained)
        self.transitions.extend(result.transitions)
        return result

    def presence(
        self, device_id: str, presence: Presence, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        result = self.engine.presence(device_id, presence, now, wall, retained=retained)
        self.transitions.extend(result.transitions)
        return result

    def feed(self, t: float, topic: str, payload: bytes | str, *, retained: bool = False) -> bool:
        data = payload.encode() if isinstance(payload, str) else payload
        return self.ingest.handle(topic, data, retained, t, WALL0 + t)

    def tick(self, t: float) -> None:
        self.transitions.extend(self.engine.tick(t, WALL0 + t))

    def state(self, device_id: str) -> State | None:
        snap = self.engine.snapshot(device_id)
        return None if snap is None else snap.state

    def counts(self, source: str) -> dict[str, int]:
        return dict(self.ingest.per_source[source])

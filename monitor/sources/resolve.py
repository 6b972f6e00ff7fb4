"""Fill in what a convention does not carry (session, seq, interval) for the engine.

The engine judges every device by sessions and sequence numbers (protocol v1 has
both). Sparkplug has them too; Tasmota, ESPHome, Zigbee2MQTT, Shelly and most home-grown
conventions have neither. For those the resolver applies the best rules the data allows:

Rules
=====
  S1  An event that names a session (the adapter found one) keeps it.
  S2  A sessionless birth (``Online``) starts a new session: a birth is a new
      connection. So a will from the old connection that arrived just before it is
      overtaken (the engine's will hold), exactly as for protocol v1.
  S3  A sessionless death (``Offline``) names the device's current session: the one
      this resolver last gave it, else the engine's (persisted from an earlier run), else
      a new one. Without sessions arrival order decides: a will delivered *after* the
      new connection's birth cannot be told from a real death.
  S4  A sessionless ``Beat`` continues the current session; after a death, or for a
      device this run has not seen yet, it starts a new one (the device is evidently
      alive, whatever an earlier run last heard of it).
  S5  A retained sessionless message is a replay of what the broker kept, not a new
      connection: a retained birth or beat keeps the current session (this run's, else
      the engine's) unless that session ended, so replays on every resubscribe do not
      look like reconnects, and a retained beat never overtakes a held will.
  S6  A sessionless beat whose seq (from the payload) is lower than the last one is a
      restarted counter, i.e. the device rebooted: it starts a new session (an equal
      seq is a duplicate). A reordered old message costs a spurious reconnect, never a
      false offline.
  S7  A missing seq becomes a synthetic one that never repeats: strictly increasing per
      device, starting from the receive wall clock in microseconds, so it also exceeds
      any seq an earlier run persisted. Such beats are never duplicates.
  S8  A missing interval is the source's expected interval.

Pure: no clock reads, no I/O. ``view`` reads the engine's current session of a device.
"""

from __future__ import annotations

from collections.abc import Callable

from device_client.protocol import (
    Heartbeat,
    OfflineReason,
    Presence,
    PresenceState,
    new_session,
)
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.states import State
from monitor.sources.events import Beat, Offline, Online, SourceEvent

SessionView = Callable[[str], tuple[str | None, bool] | None]
"""``device_id -> (current session, whether it ended)`` per the engine, or None."""


class SessionResolver:
    """Per-device session and seq bookkeeping for sessionless conventions."""

    def __init__(self, view: SessionView, *, new_id: Callable[[], str] = new_session) -> None:
        self._view = view
        self._new_id = new_id
        # Sessionless devices seen this run: [current session, ended].
        self._known: dict[str, tuple[str, bool]] = {}
        self._last_seq: dict[str, int] = {}  # synthetic (S7)
        self._payload_seq: dict[str, int] = {}  # read from payloads (S6)

    def resolve(
        self, event: SourceEvent, *, interval: float, wall: float, retained: bool = False
    ) -> tuple[str, Heartbeat | Presence]:
        device_id = event.device_id
        if event.session is not None and device_id in self._known:
            # A convention mixing sessionless presence with sessions in its beats (a
            # generic rule): later sessionless deaths must name the session in force.
            self._known[device_id] = (event.session, isinstance(event, Offline))
        if isinstance(event, Beat):
            session = event.session
            if session is None:
                if event.seq is not None and not retained:
                    self._note_seq(device_id, event.seq)  # S6
                session = (
                    self._replayed_session(device_id, beat=True)
                    if retained
                    else self._beat_session(device_id)
                )
            seq = event.seq if event.seq is not None else self._synthetic_seq(device_id, wall)
            hb = Heartbeat(
                seq=seq,
                session=session,
                interval=event.interval if event.interval is not None else interval,
                ts=event.ts,
                metrics=event.metrics or {},
            )
            return device_id, hb
        if isinstance(event, Online):
            session = event.session or (
                self._replayed_session(device_id, beat=False)
                if retained
                else self._birth_session(device_id)
            )
            return device_id, Presence(PresenceState.ONLINE, session)
        session = event.session or self._death_session(device_id)
        reason = OfflineReason.SHUTDOWN if event.shutdown else OfflineReason.CONNECTION_LOST
        return device_id, Presence(PresenceState.OFFLINE, session, reason)

    def forget(self, device_id: str) -> None:
        self._known.pop(device_id, None)
        self._last_seq.pop(device_id, None)
        self._payload_seq.pop(device_id, None)

    # S2
    def _birth_session(self, device_id: str) -> str:
        session = self._new_id()
        self._known[device_id] = (session, False)
        return session

    # S3
    def _death_session(self, device_id: str) -> str:
        known = self._known.get(device_id)
        if known is not None:
            session = known[0]
        else:
            seen = self._view(device_id)
            session = seen[0] if seen is not None and seen[0] is not None else self._new_id()
        self._known[device_id] = (session, True)
        return session

    # S4
    def _beat_session(self, device_id: str) -> str:
        known = self._known.get(device_id)
        if known is not None and not known[1]:
            return known[0]
        return self._birth_session(device_id)

    # S6
    def _note_seq(self, device_id: str, seq: int) -> None:
        last = self._payload_seq.get(device_id)
        self._payload_seq[device_id] = seq
        if last is not None and seq < last:
            known = self._known.get(device_id)
            if known is not None:
                self._known[device_id] = (known[0], True)  # ended: the next beat starts anew

    # S5
    def _replayed_session(self, device_id: str, *, beat: bool) -> str:
        known = self._known.get(device_id)
        if known is None:
            seen = self._view(device_id)
            if seen is not None and seen[0] is not None:
                known = (seen[0], seen[1])
        if known is None:
            return self._birth_session(device_id)
        session, ended = known
        if ended and not beat:
            # The broker's latest retained message says online: it reconnected since.
            return self._birth_session(device_id)
        # A retained beat of an ended session is older than the death: the engine
        # takes it as a claim for that session, which changes nothing.
        self._known[device_id] = known
        return session

    # S7
    def _synthetic_seq(self, device_id: str, wall: float) -> int:
        last = self._last_seq.get(device_id, -1)
        seq = max(last + 1, int(wall * 1_000_000))
        self._last_seq[device_id] = seq
        return seq


def engine_view(engine: LivenessEngine) -> SessionView:
    """The engine's current session of a device, and whether it ended.

    The engine keeps ``ended`` to itself; an offline device's session has ended (its
    will or shutdown made it offline), and for any other state a beat is stronger
    evidence than what an earlier run recorded.
    """

    def view(device_id: str) -> tuple[str | None, bool] | None:
        snap = engine.snapshot(device_id)
        if snap is None:
            return None
        return snap.session, snap.state is State.OFFLINE

    return view

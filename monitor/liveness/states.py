"""Liveness states, transition reasons, and the table of allowed transitions.

Everything here is data. The engine looks up every state change in
:data:`ALLOWED_TRANSITIONS` before making it and raises :class:`IllegalTransition`
for anything the table does not list, so this table is the one place to read what
can ever happen to a device (model: h11's ``_state.py``).

``None`` as the old state means "not tracked yet": the device's first record.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from monitor.liveness.errors import IllegalTransition


class State(StrEnum):
    UNKNOWN = "unknown"
    """Known but not confirmed since the monitor started (e.g. only a retained claim)."""
    ONLINE = "online"
    LATE = "late"
    """No heartbeat for interval + grace: a warning."""
    STALE = "stale"
    """No heartbeat for interval x missed_limit + grace: maybe connected, not beating."""
    OFFLINE = "offline"
    """Its session's will arrived (connection lost) or it announced shutdown."""
    LOST = "lost"
    """Stale or offline for longer than lost_after."""
    MAINTENANCE = "maintenance"
    """Put aside by ops: timing suspended."""


class Reason(StrEnum):
    FIRST_SEEN = "first-seen"
    HEARTBEAT = "heartbeat"
    PRESENCE_ONLINE = "presence-online"
    MISSED_HEARTBEATS = "missed-heartbeats"
    STOPPED_BEATING = "stopped-beating"
    CONNECTION_LOST = "connection-lost"
    SHUTDOWN = "shutdown"
    GONE = "gone"
    MAINTENANCE_STARTED = "maintenance-started"
    MAINTENANCE_ENDED = "maintenance-ended"


_U, _ON, _LATE, _STALE, _OFF, _LOST, _MAINT = State
_R = Reason
_BACK_ONLINE: Final = frozenset({_R.HEARTBEAT, _R.PRESENCE_ONLINE})
_GOES_OFFLINE: Final = frozenset({_R.CONNECTION_LOST, _R.SHUTDOWN})
_ENTERS_MAINTENANCE: Final = frozenset({_R.MAINTENANCE_STARTED})
_LEAVES_MAINTENANCE: Final = frozenset({_R.MAINTENANCE_ENDED})

ALLOWED_TRANSITIONS: Final[dict[tuple[State | None, State], frozenset[Reason]]] = {
    # First record of a device: a fresh heartbeat or presence makes it online at once; a
    # retained claim or a will from a device never seen before makes it unknown.
    (None, _U): frozenset({_R.FIRST_SEEN}),
    (None, _ON): frozenset({_R.FIRST_SEEN}),
    # Evidence brings a device back online from any non-maintenance state.
    (_U, _ON): _BACK_ONLINE,
    (_LATE, _ON): _BACK_ONLINE,
    (_STALE, _ON): _BACK_ONLINE,
    (_OFF, _ON): _BACK_ONLINE,
    (_LOST, _ON): _BACK_ONLINE,
    # Deadlines move a device down; a late tick (or the end of warm-up) may skip steps.
    (_U, _LATE): frozenset({_R.MISSED_HEARTBEATS}),
    (_ON, _LATE): frozenset({_R.MISSED_HEARTBEATS}),
    (_U, _STALE): frozenset({_R.STOPPED_BEATING}),
    (_ON, _STALE): frozenset({_R.STOPPED_BEATING}),
    (_LATE, _STALE): frozenset({_R.STOPPED_BEATING}),
    (_U, _LOST): frozenset({_R.GONE}),
    (_ON, _LOST): frozenset({_R.GONE}),
    (_LATE, _LOST): frozenset({_R.GONE}),
    (_STALE, _LOST): frozenset({_R.GONE}),
    (_OFF, _LOST): frozenset({_R.GONE}),
    # A will (after its hold) or a shutdown for the current session.
    (_U, _OFF): _GOES_OFFLINE,
    (_ON, _OFF): _GOES_OFFLINE,
    (_LATE, _OFF): _GOES_OFFLINE,
    (_STALE, _OFF): _GOES_OFFLINE,
    # Maintenance can start from anywhere and ends in whatever the evidence says.
    (_U, _MAINT): _ENTERS_MAINTENANCE,
    (_ON, _MAINT): _ENTERS_MAINTENANCE,
    (_LATE, _MAINT): _ENTERS_MAINTENANCE,
    (_STALE, _MAINT): _ENTERS_MAINTENANCE,
    (_OFF, _MAINT): _ENTERS_MAINTENANCE,
    (_LOST, _MAINT): _ENTERS_MAINTENANCE,
    (_MAINT, _ON): _LEAVES_MAINTENANCE,
    (_MAINT, _STALE): _LEAVES_MAINTENANCE,
    (_MAINT, _OFF): _LEAVES_MAINTENANCE,
}


def check_transition(device_id: str, old: State | None, new: State, reason: Reason) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` for ``reason`` is in the table.

    A real exception rather than ``assert``: a broken transition must not slip into the
    transitions table just because Python runs with ``-O``.
    """
    reasons = ALLOWED_TRANSITIONS.get((old, new))
    if reasons is None or reason not in reasons:
        raise IllegalTransition(device_id, old, new, reason)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change, as the shell stores it (a row) and publishes it."""

    device_id: str
    old: State | None
    new: State
    reason: Reason
    at_wall: float
    """UTC epoch seconds at which the evidence says the change happened."""
    session: str | None

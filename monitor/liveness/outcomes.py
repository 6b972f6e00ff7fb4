"""What an event did, so the shell can count it and act on it."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from monitor.liveness.states import Reason, State, Transition


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    """Fresh evidence for the current session, recorded."""
    RECONNECTED = "reconnected"
    """Fresh evidence carrying a new session: the device reconnected; adopted."""
    DUPLICATE = "duplicate"
    """Heartbeat with seq <= the last seq of the current session: counted, nothing else."""
    STALE_SESSION = "stale-session"
    """Names a session that has ended or was replaced: ignored."""
    RETAINED_CLAIM = "retained-claim"
    """A retained replay: recorded as a claim, refreshes no deadline and no state."""
    WILL_HELD = "will-held"
    """A will for the current session, held until a new session or the hold ends."""
    IGNORED_IN_MAINTENANCE = "ignored-in-maintenance"
    """Would have changed state, but the device is in maintenance."""
    NOT_HELD = "not-held"
    """A cluster replica's message for a partition it does not hold (still in flight as
    it let the partition go, on a broker routing by partition): nothing changes."""


# (session, last_seen_wall, effective interval) of a device.
Cadence = tuple[str | None, float | None, float]
# What a status topic shows of a device: state, since, last seen (wall), reason, session,
# effective interval, class (LivenessEngine.status_view).
StatusView = tuple[State, float, float | None, Reason | None, str | None, float, str]


# A msgspec struct rather than a frozen dataclass: one is made for every heartbeat, and a
# frozen dataclass's __init__ (object.__setattr__ per field) cost more than the rest of
# the engine's bookkeeping for it. gc=False: it holds tuples of values, never itself.
class EventResult(msgspec.Struct, frozen=True, gc=False):
    outcome: Outcome
    transitions: tuple[Transition, ...] = ()
    latency: float | None = None
    """Receive wall clock minus the device's ``ts``, for accepted fresh heartbeats that
    carry one: transport latency, plus what the device's clock is off by as long as that
    is within ``clock.TOLERANCE``; beyond it the estimated offset is taken out
    (``clock.py``). Never used for a verdict."""
    missed: int = 0
    """Missed heartbeats this heartbeat reveals that were not counted yet (see
    ``missed.py``): only within the current session, never across a blind period."""
    gap: float | None = None
    """Seconds since the previous heartbeat of the same session that this monitor
    heard with no blind period between them (for jitter), else None."""
    before: Cadence | None = None
    """The device's cadence before this heartbeat, for accepted fresh heartbeats of a
    device already tracked (None for a new one): what the shell compares the heartbeat
    with (jitter, whether its retained status became untrue)."""

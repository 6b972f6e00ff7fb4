"""Per-device mutable records, kept small because there may be a million of them.

``__slots__`` (no per-instance dict), class names and policies shared between devices,
state and reason enum members shared by identity. A record costs roughly 210 bytes
plus its id and session strings and a few floats; see ``bench/bench_engine.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from device_client.protocol import OfflineReason
from monitor.liveness.clock import StepVotes
from monitor.liveness.policy import Policy
from monitor.liveness.states import Reason, State


class DeviceRecord:
    """What the engine knows about one device. Internal: the shell sees snapshots."""

    __slots__ = (
        "anchor",
        "announced",
        "clock_offset",
        "clock_step",
        "confirmed",
        "deadline",
        "device_class",
        "device_id",
        "ended",
        "last_seen_mono",
        "last_seen_wall",
        "last_seq",
        "missed_counted",
        "missed_from",
        "override",
        "policy",
        "prev_session",
        "queued",
        "reason",
        "reported",
        "session",
        "since_wall",
        "state",
    )

    def __init__(
        self,
        device_id: str,
        state: State,
        *,
        since_wall: float,
        device_class: str,
        policy: Policy,
        anchor: float,
    ) -> None:
        self.device_id = device_id
        self.state = state
        self.since_wall = since_wall
        self.reason: Reason | None = None
        # The latest session seen, and whether its will/shutdown has arrived. The
        # session before it is remembered too, to recognise its late messages.
        self.session: str | None = None
        self.ended = False
        self.prev_session: str | None = None
        self.last_seq: int | None = None
        self.last_seen_mono: float | None = None
        self.last_seen_wall: float | None = None
        self.announced: float | None = None
        self.override: float | None = None
        self.device_class = device_class
        self.policy = policy
        # Fresh evidence seen since this monitor started (loaded records start False).
        self.confirmed = False
        # Monotonic time the current stage's deadline counts from: the last heartbeat
        # (re-arm) for unknown/online/late, the start of the lost clock for
        # stale/offline. Deadlines are derived from it, so a policy change can
        # recompute them without a clock reading.
        self.anchor = anchor
        self.deadline = math.inf
        self.queued = math.inf
        # Missed-heartbeat bookkeeping (see missed.py): the monotonic time beats are
        # owed from, and how many owed since then were already counted.
        self.missed_from = anchor
        self.missed_counted = 0
        # The current session's clock offset estimate, once a heartbeat carried a ts,
        # and the votes for a step back while one is suspected (clock.py).
        self.clock_offset: float | None = None
        self.clock_step: StepVotes | None = None
        # What the last heartbeat reported besides liveness (fw, metrics), held only
        # until the next drain hands it to the store: never a basis of a verdict.
        self.reported: tuple[str | None, Mapping[str, object]] | None = None


class HeldWill:
    """A will (or retained offline presence) waiting before it counts.

    Kept outside :class:`DeviceRecord` because at most a handful exist at a time.
    """

    __slots__ = ("deadline", "mono", "queued", "reason", "replayed", "until_warmup", "wall")

    def __init__(
        self,
        reason: OfflineReason,
        *,
        mono: float,
        wall: float,
        until_warmup: bool,
        replayed: bool = False,
    ) -> None:
        self.reason = reason
        self.mono = mono
        self.wall = wall
        self.until_warmup = until_warmup
        # A retained will replayed on a resubscription (after the monitor was blind).
        self.replayed = replayed
        self.deadline = math.inf
        self.queued = math.inf

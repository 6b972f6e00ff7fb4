"""Whether the monitor can see its devices right now: its broker link, and its own clock.

The liveness engine freezes every deadline while the monitor is blind (R15) and, when
sight returns, gives every device interval + grace before judging it. Blindness has
more causes than a closed connection, and this module (pure: time passed in, like the
engine) tells the shell when it begins and ends:

* **disconnected** -- no broker connection.
* **probe overdue** -- the connection looks up, but the link probe has not come back.
  The monitor publishes a small QoS 1 message to a topic it subscribes to itself, every
  ``every`` seconds; the broker queues it behind everything it has for the monitor, so
  its echo proves that what was sent before it has been read. A blackholed link, a
  broker that stopped answering, or a monitor so far behind its backlog that its
  evidence is older than a device's grace, all show as a probe older than ``timeout``
  -- long before TCP keepalive would notice (1.5 to 2 x keepalive).
* **stalled** -- the monitor itself did not run: SIGSTOP, a VM freeze, a long GC
  pause, CPU starvation. Seen from its clocks: the gap between two checks (monotonic,
  or wall clock, which keeps running through a VM suspend that stops the monotonic
  one) is longer than ``timeout``. Meanwhile heartbeats queued at the broker and in the
  socket; judging devices before reading them blamed every device for the stall.

Sight returns only with the echo of a probe sent after the blindness began (any later
one will do: the broker keeps their order), so everything queued meanwhile -- the
backlog of a stall, the session a reconnection resumed, the retained replay of a
resubscription -- is read before any device is judged. Without probes (the broker
refused the probe subscription, or never echoed one) sight returns with the connection
and the engine's re-arm with grace is all there is.

Timing: a cut is noticed at most ``every + timeout`` after it happens. The shell
derives both from the smallest grace of any class (``probe_timing``), so the monitor
knows it is blind before any device deadline it would otherwise blame.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# Probes in flight at most; a dead link needs no more of them.
MAX_OUTSTANDING: Final = 8
# The probe timeout is never shorter than this (a loaded machine answers in well under
# a second) nor longer than keepalive (keepalive notices by then anyway).
MIN_TIMEOUT: Final = 1.0


class Blindness(StrEnum):
    DISCONNECTED = "disconnected"
    PROBE_OVERDUE = "probe-overdue"
    STALLED = "stalled"


@dataclass(frozen=True)
class SightChange:
    """Blindness began (``blind``) or ended; ``detail`` says why, for the log."""

    blind: bool
    reason: Blindness
    detail: str
    blind_for: float = 0.0  # when sight returns: seconds it was blind


def probe_timing(min_grace: float, keepalive: float) -> tuple[float, float]:
    """``(timeout, every)`` for the probe: a cut is noticed within half the grace.

    A device whose heartbeat was due just as the link died goes late one grace later,
    so the cut must be seen well inside that: a third of the smallest grace for the
    timeout and a sixth for the interval, the timeout clamped to [MIN_TIMEOUT,
    keepalive]. With the README's ``--grace 5``: a probe every 0.83 s, blind 1.67 s
    after the oldest unanswered one, at most 2.5 s after a cut.
    """
    timeout = min(max(min_grace / 3.0, MIN_TIMEOUT), float(keepalive))
    return timeout, timeout / 2.0


class Sight:
    """The monitor's sight, from connection events, probe echoes and clock readings."""

    def __init__(self, *, timeout: float, every: float, now: float, wall: float) -> None:
        self.timeout = timeout
        self.every = every
        self.probing = True
        self._connected = False
        self._reason: Blindness | None = Blindness.DISCONNECTED
        self._blind_since = now
        # The seq whose echo (or a later one's) ends this blindness; None until a probe
        # is sent after the blindness began.
        self._barrier: int | None = None
        self._outstanding: OrderedDict[int, float] = OrderedDict()
        self._last_sent = -math.inf
        self._last_check = (now, wall)
        self._ever_echoed = False
        self._gave_up = False
        self._first_sent: float | None = None
        self.last_rtt: float | None = None
        self.stalls = 0
        self.longest_stall = 0.0
        self.blind_periods: dict[Blindness, int] = dict.fromkeys(Blindness, 0)

    # ------------------------------------------------------------------- views

    @property
    def blind(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> Blindness | None:
        return self._reason

    @property
    def blind_since(self) -> float | None:
        return self._blind_since if self._reason is not None else None

    # ------------------------------------------------------------------ events

    def connected(self, now: float, *, probe: bool = True) -> SightChange | None:
        """A connection is up. Sight returns with the next probe's echo, not now.

        ``probe``: whether the broker granted the probe subscription on it.
        """
        self._connected = True
        self._outstanding.clear()
        self._first_sent = None
        self.probing = probe and not self._gave_up
        if not self.probing and self._reason is not None:
            return self._see(now)
        return None

    def disconnected(self, now: float) -> SightChange | None:
        self._connected = False
        self._outstanding.clear()
        return self._go_blind(Blindness.DISCONNECTED, now, "broker connection lost")

    def probe_due(self, now: float) -> bool:
        """Whether the shell should send a probe now (then call :meth:`sent`)."""
        if not (self._connected and self.probing) or len(self._outstanding) >= MAX_OUTSTANDING:
            return False
        waiting = self._reason is not None and self._barrier is None
        return waiting or now - self._last_sent >= self.every

    def sent(self, seq: int, now: float) -> None:
        self._outstanding[seq] = now
        self._last_sent = now
        if self._first_sent is None:
            self._first_sent = now
        if self._reason is not None and self._barrier is None:
            self._barrier = seq

    def echoed(self, seq: int, now: float) -> SightChange | None:
        """The probe ``seq`` came back: everything queued before it has been read."""
        sent_at = self._outstanding.get(seq)
        if sent_at is not None:
            self.last_rtt = now - sent_at
        # The broker keeps the order of our QoS 1 messages: earlier probes are answered.
        while self._outstanding and next(iter(self._outstanding)) <= seq:
            self._outstanding.popitem(last=False)
        self._ever_echoed = True
        if self._reason is None or not self._connected:
            return None
        if self._barrier is not None and seq >= self._barrier:
            return self._see(now)
        return None

    def check(self, now: float, wall: float) -> SightChange | None:
        """Called every tick, before any deadline is judged: a stall, a late probe."""
        last_mono, last_wall = self._last_check
        self._last_check = (now, wall)
        # Either clock may show the gap: monotonic for SIGSTOP and starvation, the wall
        # clock for a VM suspend during which the monotonic clock stood still. A wall
        # clock stepped back shows nothing.
        gap = max(now - last_mono, wall - last_wall)
        if gap > self.timeout:
            self.stalls += 1
            self.longest_stall = max(self.longest_stall, gap)
            return self._go_blind(
                Blindness.STALLED,
                now,
                f"the monitor itself did not run for {gap:.1f} s (stopped, frozen or starved)",
            )
        if not (self._connected and self.probing):
            return None
        if self._outstanding:
            oldest = next(iter(self._outstanding.values()))
            if now - oldest > self.timeout and self._reason is None:
                return self._go_blind(
                    Blindness.PROBE_OVERDUE,
                    now,
                    f"the broker link has not answered a probe for {now - oldest:.1f} s "
                    f"(limit {self.timeout:g} s)",
                )
        return None

    def overdue(self, now: float) -> bool:
        """True if a :meth:`check` at ``now`` may find a stall (cheap: for every message).

        The shell's tick checks every fraction of a second, but after a stall the event
        loop may hand over queued messages before the tick runs: their gaps, figures and
        risk signals would be the stall's. The receive path asks this first, and calls
        :meth:`check` when it says so, so the backlog is read blind.
        """
        return now - self._last_check[0] > self.timeout

    def ran(self, now: float, wall: float) -> None:
        """The shell finished a tick's own work at ``now``: the next gap counts from here.

        A tick that judged a mass outage may take seconds of the monitor's own work;
        that is not a stall, and must not re-arm every other device.
        """
        self._last_check = (now, wall)

    def give_up_probing(self, now: float) -> SightChange | None:
        """Probes cannot work on this broker: none was ever answered. For good."""
        self._gave_up = True
        self.probing = False
        self._outstanding.clear()
        if self._connected and self._reason is not None:
            return self._see(now)
        return None

    def never_answered(self, now: float, patience: float) -> bool:
        """True when probes went out for ``patience`` seconds and none ever came back."""
        return (
            self.probing
            and self._connected
            and not self._ever_echoed
            and self._first_sent is not None
            and now - self._first_sent > patience
        )

    # ---------------------------------------------------------------- helpers

    def _go_blind(self, reason: Blindness, now: float, detail: str) -> SightChange | None:
        # A new cause moves the barrier on: only a probe sent after it ends blindness.
        self._barrier = None
        if self._reason is not None:
            if reason is not Blindness.DISCONNECTED or self._reason is Blindness.DISCONNECTED:
                return None
            # Already blind (a late probe, a stall) and now disconnected as well: say so.
        else:
            self._blind_since = now
        self._reason = reason
        self.blind_periods[reason] += 1
        return SightChange(True, reason, detail)

    def _see(self, now: float) -> SightChange:
        assert self._reason is not None
        reason, self._reason = self._reason, None
        self._barrier = None
        return SightChange(False, reason, "", blind_for=now - self._blind_since)

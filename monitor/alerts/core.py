"""The alert decision core: transitions in, alert intents out. Pure.

No asyncio, no database, no clock reads: ``now`` (monotonic seconds) and ``wall`` (UTC
epoch seconds) are arguments, so tests drive it step by step. The shell
(:mod:`monitor.alerts.shell`) feeds it every transition and a tick a few times a
second, and carries out the intents it returns; the database then decides, by
compare-and-set, whether an intent still applies (see ``repository``).

Rules
=====

Levels (``levels.py``)
  A1  A transition is judged by the level of its new state (UP, DOWN with a severity,
      QUIET, NEUTRAL, MAINTENANCE) and by whether the device was already down before
      it. Only UP -> DOWN *opens* an alert; DOWN -> DOWN only updates an alert that is
      open ("worse": offline -> lost); DOWN -> UP only resolves one. A device that went
      down silently (engine maintenance, an announced shutdown, before alerting
      existed) therefore stays silent until it has been up again; one silenced by a
      maintenance window or a mute is alerted when the silence ends (A9).

Hold (storm window)
  A2  A device going down is *held* for ``storm_window`` seconds before its alert is
      released. Coming back within the hold cancels it (a blip: no alert, no recovery).
      A recovery of an open alert is held the same way.
  A3  Nothing is released while the monitor warms up or is blind (``settled`` is False):
      held events wait, and are judged together once it is settled.

Storms (outage incidents)
  A4  When the oldest held drop is due and at least ``threshold`` devices are held down
      (threshold = max(storm_min_devices, ceil(storm_share x fleet size))), they all
      become ONE outage incident instead of one alert each. Drops within
      ``storm_window`` of the incident's latest drop join it silently.
  A5  Recoveries of incident members are silent. The incident resolves with one
      notification when every member is back, or, once at least one is back, when
      nothing changed for 3 x ``storm_window``: the members still down are then fed
      back as held drops (A2/A4: individual alerts, or a new incident if many).
  A6  When at least ``threshold`` recoveries of open alerts are held, they resolve with
      one grouped notification.

Flapping
  A7  Every UP -> DOWN and its following DOWN -> UP counts as a change (a recovery only
      counts after a counted drop). More than ``flap_changes`` changes within
      ``flap_window`` give one "flapping" alert (opening one, or marking the open one),
      held events of the device are dropped, and its changes are silent until it has
      been stable (no change) for ``flap_window``. Then one "stable" notification: the
      alert resolves if the device is up, or continues as a normal down alert.

Maintenance and mutes (``schedule.py``)
  A8  A drop of a silenced device opens nothing and is not counted as a change; a held
      drop silenced by the time it is due is not released either. Recoveries of alerts
      that were sent always go out. Entering engine maintenance (``devices maintenance
      on``) resolves the device's open alert without a notification.
  A9  A silenced drop is remembered while the device stays down. When nothing silences
      it any more (the window ended, the mute expired) and it is still down, it is held
      as a drop from that moment (A2, A4: one alert, or one outage when a window over
      many devices ends with many of them dead). Coming back, an announced shutdown or
      engine maintenance forgets it.

Devices never seen alive
  A10 A device known only from messages the broker retained (its first state unknown,
      and never online since) is shown but not paged for: its drop opens a *warning*
      alert marked ``never_seen``, after the usual hold but outside storms, and its
      reason says why. Warnings go only where a rule asks for them
      (``--min-severity warning``); they are never repeated or escalated, and the
      device's further changes while down are not notified. Once it has been online it
      is an ordinary device.

At risk (opt-in: only devices an ``at-risk`` rule covers, ``routing.py``)
  A11 After each scoring pass of the risk scorer (``monitor/risk``) the shell hands the
      core the flagged devices, and those with an at-risk alert open, each with its
      risk level and the lowest level a rule alerts on for it (``min_risk``; None: no
      rule covers it). A device that is online, reaches ``min_risk`` and is not
      silenced opens one *warning* alert, its reason the scorer's reasons in words.
      It is not repeated while the level stays up (a change of level says nothing
      either). It resolves, with one notification, once the device has been scored
      below ``min_risk`` (or no rule covers it any more) for ``RISK_CLEAR_PASSES``
      passes in a row, so a score hovering at the threshold does not flap. When the
      device actually goes down (or is put in maintenance, or shuts down) the at-risk
      alert resolves silently: the state alert takes over (A1). A silenced device
      opens nothing; an at-risk alert already open stays open, and as a warning it is
      never repeated or escalated. Nothing is decided while the monitor is not
      settled (A3): the shell skips those passes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from monitor.alerts.levels import Level, Severity, classify, risk_rank, was_down, worst
from monitor.alerts.schedule import Quiet
from monitor.liveness.states import State, Transition

_FLIP_PRUNE_EVERY: Final = 60.0
RISK_CLEAR_PASSES: Final = 2


class Event(StrEnum):
    """What a notification says; stored on each delivery and published on MQTT."""

    DOWN = "down"
    WORSE = "worse"
    RECOVERED = "recovered"
    FLAPPING = "flapping"
    STABLE = "stable"
    OUTAGE = "outage"
    OUTAGE_OVER = "outage-over"
    RECOVERIES = "recoveries"
    AT_RISK = "at-risk"
    RISK_CLEARED = "risk-cleared"
    REPEAT = "repeat"
    ESCALATED = "escalated"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class AlertOptions:
    alert_on_shutdown: bool = False
    alert_late: bool = False
    storm_share: float = 0.2
    storm_window: float = 10.0
    storm_min_devices: int = 5
    flap_changes: int = 6
    """0 disables flapping detection."""
    flap_window: float = 600.0

    def __post_init__(self) -> None:
        if not 0 < self.storm_share <= 1:
            raise ValueError("storm_share must be in (0, 1]")
        if self.storm_window < 0 or self.flap_window <= 0:
            raise ValueError("storm_window must be >= 0 and flap_window > 0")
        if self.storm_min_devices < 2 or self.flap_changes < 0:
            raise ValueError("storm_min_devices must be >= 2 and flap_changes >= 0")

    def threshold(self, fleet_size: int) -> int:
        return max(self.storm_min_devices, math.ceil(self.storm_share * fleet_size))


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What routing and scopes need to know of a device besides its id."""

    device_class: str = "default"
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device's state as an alert reports it."""

    device_id: str
    state: str
    reason: str | None
    at_wall: float
    context: DeviceContext = DeviceContext()


# --- intents: what the shell is asked to do ------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenAlert:
    key: str
    device: DeviceState
    severity: Severity
    flapping: bool = False
    changes: int = 0
    never_seen: bool = False
    """A10: the device was never seen alive by this database."""

    @property
    def event(self) -> Event:
        return Event.FLAPPING if self.flapping else Event.DOWN


@dataclass(frozen=True, slots=True)
class UpdateAlert:
    key: str
    device: DeviceState
    severity: Severity
    event: Event
    flapping: bool
    changes: int = 0


@dataclass(frozen=True, slots=True)
class ResolveAlert:
    key: str
    device: DeviceState
    event: Event | None
    """None: resolve without a notification."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class ResolveGroup:
    key: str
    devices: tuple[DeviceState, ...]
    at_wall: float


@dataclass(frozen=True, slots=True)
class OpenOutage:
    key: str
    devices: tuple[DeviceState, ...]
    first_wall: float
    at_wall: float


@dataclass(frozen=True, slots=True)
class GrowOutage:
    key: str
    devices: tuple[DeviceState, ...]


@dataclass(frozen=True, slots=True)
class ResolveOutage:
    key: str
    at_wall: float
    total: int
    recovered: int
    still_down: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OpenRiskAlert:
    """A11: the device reached the risk level a rule alerts on."""

    key: str
    device: DeviceState
    level: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolveRiskAlert:
    key: str
    device: DeviceState
    event: Event | None
    """RISK_CLEARED: the risk fell back; None: resolved silently (the device went down)."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class RiskEntry:
    """One device of a scoring pass, as the at-risk decision (A11) needs it."""

    device: DeviceState
    level: str
    """``low``, ``elevated`` or ``high``."""
    reasons: tuple[str, ...] = ()
    min_risk: str | None = None
    """The lowest level an ``at-risk`` rule alerts on for this device; None: no rule."""
    up: bool = True
    """The device is online (only an online device is at risk of going down)."""


Intent = (
    OpenAlert
    | UpdateAlert
    | ResolveAlert
    | ResolveGroup
    | OpenOutage
    | GrowOutage
    | ResolveOutage
    | OpenRiskAlert
    | ResolveRiskAlert
)


# --- internal state -------------------------------------------------------------------


@dataclass(slots=True)
class _Held:
    key: str
    device: DeviceState
    severity: Severity
    held_at: float


@dataclass(slots=True)
class _Silenced:
    """A drop nobody was told about because ``by`` silenced it (A9)."""

    key: str
    device: DeviceState
    severity: Severity
    by: str


@dataclass(slots=True)
class _OpenView:
    severity: Severity
    state: str
    flapping: bool = False


@dataclass(slots=True)
class _Flapping:
    device: DeviceState
    severity: Severity
    level: Level
    last_change: float
    changes: int
    key: str


@dataclass(slots=True)
class _Incident:
    key: str
    members: dict[str, DeviceState]
    first_wall: float
    last_drop: float
    last_change: float
    recovered: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class CoreCounts:
    """Sizes of the core's state, for tests and metrics."""

    held_down: int
    held_up: int
    open_alerts: int
    flapping: int
    incidents: int
    incident_members: int
    silenced_down: int = 0
    at_risk: int = 0


class AlertCore:
    """Alert decisions for a whole fleet. Not thread-safe: one owner (the shell's loop)."""

    def __init__(self, options: AlertOptions | None = None) -> None:
        self.options = options or AlertOptions()
        self._quiet = Quiet()
        self._open: dict[str, _OpenView] = {}
        # Insertion-ordered: the first entry is always the oldest (A2).
        self._held_down: dict[str, _Held] = {}
        self._held_up: dict[str, _Held] = {}
        self._flips: dict[str, deque[tuple[float, Severity | None]]] = {}
        self._flapping: dict[str, _Flapping] = {}
        self._incidents: dict[str, _Incident] = {}
        self._member: dict[str, str] = {}
        self._last_prune = -math.inf
        # A9: silenced drops by device, and the devices each window or mute silences,
        # so a tick only looks at the devices of windows that ended.
        self._silenced_down: dict[str, _Silenced] = {}
        # A10: devices never seen alive, and their drops held (outside storms).
        self._never_seen: set[str] = set()
        self._held_unseen: dict[str, _Held] = {}
        self._silenced_by: dict[str, set[str]] = {}
        self._last_silence_check = -math.inf
        # A11: devices with an open at-risk alert -> passes in a row scored below it.
        self._at_risk: dict[str, int] = {}

    # ------------------------------------------------------------------ configuration

    def set_quiet(self, quiet: Quiet) -> None:
        self._quiet = quiet

    def load_open_alert(
        self, device: DeviceState, *, severity: Severity, flapping: bool, up: bool, now: float
    ) -> None:
        """Restore an alert the database says is open (at start-up).

        ``up``: the device is up now (it recovered while nobody was deciding): its
        recovery is held as if it had just happened.
        """
        dev = device.device_id
        self._open[dev] = _OpenView(severity, device.state, flapping)
        if flapping:
            level = Level.UP if up else Level.DOWN
            self._flapping[dev] = _Flapping(device, severity, level, now, 0, f"{dev}:reloaded")
        elif up:
            self._held_up[dev] = _Held(f"{dev}:reloaded", device, severity, now)

    def load_risk_alert(self, device_id: str) -> None:
        """Restore an at-risk alert the database says is open (A11, at start-up)."""
        self._at_risk[device_id] = 0

    def mark_never_seen(self, device_ids: Iterable[str]) -> None:
        """At start-up: devices the database has never seen alive (A10)."""
        self._never_seen.update(device_ids)

    def load_outage(
        self,
        key: str,
        members: Sequence[DeviceState],
        *,
        recovered: Iterable[str],
        first_wall: float,
        now: float,
    ) -> None:
        """Restore an open outage incident; ``recovered``: members up now."""
        incident = _Incident(
            key,
            {m.device_id: m for m in members},
            first_wall,
            last_drop=-math.inf,
            last_change=now,
            recovered=set(recovered),
        )
        self._incidents[key] = incident
        for member in incident.members:
            self._member[member] = key

    def forget(self, device_id: str) -> None:
        """Ops deleted the device: nothing held, open or counted for it remains.

        Its open alert was resolved in the database by whoever deleted it; nothing is
        sent.
        """
        self._drop_device(device_id)
        self._open.pop(device_id, None)
        self._at_risk.pop(device_id, None)

    # ------------------------------------------------------------------------ events

    def transition(
        self, tr: Transition, *, context: DeviceContext, key: str, now: float, wall: float
    ) -> list[Intent]:
        """Judge one transition (A1, A2, A4, A7, A8); ``key`` is unique to it."""
        opts = self.options
        level, severity = classify(
            tr, alert_late=opts.alert_late, alert_on_shutdown=opts.alert_on_shutdown
        )
        dev = tr.device_id
        out: list[Intent] = []
        state = DeviceState(dev, tr.new.value, tr.reason.value, tr.at_wall, context)
        if level in (Level.DOWN, Level.QUIET, Level.MAINTENANCE) and dev in self._at_risk:
            # A11: what it was at risk of happened; the state alert takes over.
            del self._at_risk[dev]
            out.append(ResolveRiskAlert(f"{key}:at-risk", state, None, note=f"went {tr.new.value}"))
        if level is Level.MAINTENANCE:
            self._drop_device(dev)
            if self._open.pop(dev, None) is not None:
                out.append(ResolveAlert(key, state, None, note="maintenance"))
            return out
        down_before = was_down(tr.old, alert_late=opts.alert_late)
        if tr.new is State.ONLINE:
            self._never_seen.discard(dev)
            self._held_unseen.pop(dev, None)  # a blip: nothing was said
        elif tr.old is None or tr.old is State.UNKNOWN:
            self._never_seen.add(dev)
        if dev in self._never_seen:
            self._unseen_changed(tr, state, level, key=key, down_before=down_before, now=now)
            return out
        went_down = level is Level.DOWN and not down_before
        came_up = level is Level.UP and down_before
        if not (came_up or level is Level.DOWN or level is Level.QUIET):
            return out

        incident_key = self._member.get(dev)
        if incident_key is not None:
            self._incident_member_changed(self._incidents[incident_key], state, came_up, now)
            return out

        silenced = self._silenced(dev, context, wall)
        phase = self._flapping.get(dev)
        if phase is not None:
            if went_down or came_up:
                phase.changes += 1
                phase.last_change = now
            phase.level = level
            phase.device = state
            phase.key = key
            if severity is not None:
                phase.severity = worst(phase.severity, severity) or severity
            return out
        if (went_down or came_up) and silenced is None:
            changes = self._count_change(dev, now, severity, down=went_down)
            if opts.flap_changes and changes > opts.flap_changes:
                self._start_flapping(
                    dev, state=state, level=level, key=key, changes=changes, now=now, out=out
                )
                return out

        if went_down:
            assert severity is not None
            return self._went_down(
                state, severity=severity, key=key, silenced=silenced, now=now, out=out
            )
        if level is Level.DOWN:
            assert severity is not None
            self._down_again(state, severity, key, out)
        elif came_up:
            self._forget_silenced(dev)
            if self._held_down.pop(dev, None) is None and dev in self._open:
                view = self._open[dev]
                self._held_up[dev] = _Held(key, state, view.severity, now)
        else:
            # QUIET: an announced shutdown. An alert not sent yet is dropped (the device
            # said goodbye); an open one stays open until the device is back.
            self._held_down.pop(dev, None)
            self._forget_silenced(dev)
        return out

    def tick(self, *, now: float, wall: float, fleet_size: int, settled: bool) -> list[Intent]:
        """Release what is due (A2-A7). Does nothing while not ``settled`` (A3)."""
        if not settled:
            return []
        out: list[Intent] = []
        threshold = self.options.threshold(fleet_size)
        self._tick_incidents(now, wall, out)
        self._unsilence(now, wall)
        self._release_unseen(now, wall, out, flush=False)
        self._release_downs(now, wall, threshold, out, flush=False)
        self._release_ups(now, wall, threshold, out, flush=False)
        self._tick_flapping(now, out)
        if now - self._last_prune >= _FLIP_PRUNE_EVERY:
            self._prune_changes(now)
        return out

    def risk_pass(self, entries: Iterable[RiskEntry], *, wall: float) -> list[Intent]:
        """Judge one scoring pass (A11).

        ``entries``: the devices the pass flagged, plus every device with an at-risk
        alert open (those missing count as scored ``low``).
        """
        out: list[Intent] = []
        seen: set[str] = set()
        for entry in entries:
            dev = entry.device.device_id
            seen.add(dev)
            reaches = entry.min_risk is not None and risk_rank(entry.level) >= risk_rank(
                entry.min_risk
            )
            below = self._at_risk.get(dev)
            if below is not None:
                if reaches:
                    self._at_risk[dev] = 0
                elif entry.up:
                    self._count_below(dev, entry.device, wall, out)
                continue
            if not reaches or not entry.up or self._is_down(dev):
                continue
            if self._silenced(dev, entry.device.context, wall) is not None:
                continue
            self._at_risk[dev] = 0
            out.append(
                OpenRiskAlert(f"{dev}:at-risk:{wall:.3f}", entry.device, entry.level, entry.reasons)
            )
        for dev in [d for d in self._at_risk if d not in seen]:
            self._count_below(dev, DeviceState(dev, "online", None, wall), wall, out)
        return out

    def _count_below(self, dev: str, device: DeviceState, wall: float, out: list[Intent]) -> None:
        below = self._at_risk[dev] + 1
        if below < RISK_CLEAR_PASSES:
            self._at_risk[dev] = below
            return
        del self._at_risk[dev]
        out.append(ResolveRiskAlert(f"{dev}:risk-cleared:{wall:.3f}", device, Event.RISK_CLEARED))

    def _is_down(self, dev: str) -> bool:
        return (
            dev in self._open
            or dev in self._held_down
            or dev in self._held_unseen
            or dev in self._member
            or dev in self._flapping
            or dev in self._silenced_down
        )

    def drop_risk_alerts(self, *, wall: float, note: str) -> list[Intent]:
        """Resolve every at-risk alert silently (risk scoring is off: nothing would)."""
        out: list[Intent] = [
            ResolveRiskAlert(
                f"{dev}:at-risk-off:{wall:.3f}", DeviceState(dev, "online", None, wall), None, note
            )
            for dev in self._at_risk
        ]
        self._at_risk.clear()
        return out

    def has_risk_alert(self, device_id: str) -> bool:
        return device_id in self._at_risk

    def risk_alerts(self) -> list[str]:
        """Devices with an at-risk alert open (A11)."""
        return list(self._at_risk)

    def flush(self, *, now: float, wall: float, fleet_size: int) -> list[Intent]:
        """Release everything held at once (a clean shutdown must not lose an alert)."""
        out: list[Intent] = []
        threshold = self.options.threshold(fleet_size)
        self._release_downs(now, wall, threshold, out, flush=True)
        self._release_unseen(now, wall, out, flush=True)
        self._release_ups(now, wall, threshold, out, flush=True)
        return out

    # ------------------------------------------------------------------------- views

    def counts(self) -> CoreCounts:
        return CoreCounts(
            held_down=len(self._held_down),
            held_up=len(self._held_up),
            open_alerts=len(self._open),
            flapping=len(self._flapping),
            incidents=len(self._incidents),
            incident_members=len(self._member),
            silenced_down=len(self._silenced_down),
            at_risk=len(self._at_risk),
        )

    def has_open_alert(self, device_id: str) -> bool:
        return device_id in self._open

    def is_flapping(self, device_id: str) -> bool:
        return device_id in self._flapping

    def undecided_since(self) -> float | None:
        """Earliest ``at_wall`` of a drop held but not decided yet, or None."""
        held = [*self._held_down.values(), *self._held_unseen.values()]
        if not held:
            return None
        return min(h.device.at_wall for h in held)

    # ------------------------------------------------------------------ transitions

    def _went_down(
        self,
        state: DeviceState,
        *,
        severity: Severity,
        key: str,
        silenced: str | None,
        now: float,
        out: list[Intent],
    ) -> list[Intent]:
        dev = state.device_id
        if self._held_up.pop(dev, None) is not None:
            # Its recovery was still held: the alert stays open, nothing was said.
            self._open[dev].state = state.state
            return out
        if dev in self._open:
            return out
        if silenced is not None:
            self._remember_silenced(_Silenced(key, state, severity, silenced))
            return out
        incident = self._absorbing_incident(now)
        if incident is not None:
            incident.members[dev] = state
            incident.last_drop = incident.last_change = now
            self._member[dev] = incident.key
            out.append(GrowOutage(incident.key, (state,)))
            return out
        self._held_down[dev] = _Held(key, state, severity, now)
        return out

    def _down_again(
        self, state: DeviceState, severity: Severity, key: str, out: list[Intent]
    ) -> None:
        """DOWN -> DOWN (late -> stale, offline -> lost)."""
        dev = state.device_id
        held = self._held_down.get(dev)
        if held is not None:
            held.device = state
            held.severity = worst(held.severity, severity) or severity
            return
        quiet = self._silenced_down.get(dev)
        if quiet is not None:
            quiet.device = state
            quiet.severity = worst(quiet.severity, severity) or severity
            return
        view = self._open.get(dev)
        if view is None or view.state == state.state:
            return
        view.state = state.state
        view.severity = worst(view.severity, severity) or severity
        out.append(UpdateAlert(key, state, view.severity, Event.WORSE, flapping=False))

    def _incident_member_changed(
        self, incident: _Incident, state: DeviceState, came_up: bool, now: float
    ) -> None:
        dev = state.device_id
        if came_up:
            incident.recovered.add(dev)
            incident.last_change = now
        elif dev in incident.recovered:
            incident.recovered.discard(dev)
            incident.last_change = now
        if not came_up:
            incident.members[dev] = state

    def _count_change(self, dev: str, now: float, severity: Severity | None, *, down: bool) -> int:
        changes = self._flips.get(dev)
        if not down and (not changes or changes[-1][1] is None):
            # A recovery counts only after a counted drop (A7): coming back from an
            # announced shutdown is not flapping.
            return 0 if changes is None else len(changes)
        if changes is None:
            changes = self._flips[dev] = deque()
        changes.append((now, severity if down else None))
        horizon = now - self.options.flap_window
        while changes and changes[0][0] < horizon:
            changes.popleft()
        return len(changes)

    def _start_flapping(
        self,
        dev: str,
        *,
        state: DeviceState,
        level: Level,
        key: str,
        changes: int,
        now: float,
        out: list[Intent],
    ) -> None:
        history = self._flips.pop(dev, deque())
        severity = Severity.WARNING
        for _, sev in history:
            severity = worst(severity, sev) or severity
        held = self._held_down.pop(dev, None)
        self._held_up.pop(dev, None)
        if held is not None:
            severity = worst(severity, held.severity) or severity
        self._flapping[dev] = _Flapping(state, severity, level, now, changes, key)
        view = self._open.get(dev)
        if view is None:
            self._open[dev] = _OpenView(severity, state.state, flapping=True)
            out.append(OpenAlert(key, state, severity, flapping=True, changes=changes))
        else:
            view.flapping = True
            view.severity = worst(view.severity, severity) or severity
            view.state = state.state
            out.append(
                UpdateAlert(
                    key, state, view.severity, Event.FLAPPING, flapping=True, changes=changes
                )
            )

    # ------------------------------------------------------------------------ ticks

    def _release_downs(
        self, now: float, wall: float, threshold: int, out: list[Intent], *, flush: bool
    ) -> None:
        held = self._held_down
        if not held:
            return
        window = self.options.storm_window
        oldest = next(iter(held.values()))
        if not flush and now - oldest.held_at < window:
            return
        for dev, entry in list(held.items()):
            by = self._silenced(dev, entry.device.context, wall)
            if by is not None:
                del held[dev]
                self._remember_silenced(_Silenced(entry.key, entry.device, entry.severity, by))
        if not held:
            return
        if len(held) >= threshold:
            members = list(held.values())
            held.clear()
            first = members[0]
            incident = _Incident(
                f"outage:{first.key}",
                {h.device.device_id: h.device for h in members},
                first_wall=min(h.device.at_wall for h in members),
                last_drop=max(h.held_at for h in members),
                last_change=now,
            )
            self._incidents[incident.key] = incident
            for dev in incident.members:
                self._member[dev] = incident.key
            out.append(
                OpenOutage(
                    incident.key,
                    tuple(h.device for h in members),
                    first_wall=incident.first_wall,
                    at_wall=wall,
                )
            )
            return
        while held:
            dev, entry = next(iter(held.items()))
            if not flush and now - entry.held_at < window:
                break
            del held[dev]
            self._open[dev] = _OpenView(entry.severity, entry.device.state)
            out.append(OpenAlert(entry.key, entry.device, entry.severity))

    def _release_ups(
        self, now: float, wall: float, threshold: int, out: list[Intent], *, flush: bool
    ) -> None:
        held = self._held_up
        if not held:
            return
        window = self.options.storm_window
        oldest = next(iter(held.values()))
        if not flush and now - oldest.held_at < window:
            return
        if len(held) >= threshold:
            entries = list(held.values())
            held.clear()
            for entry in entries:
                self._open.pop(entry.device.device_id, None)
            out.append(
                ResolveGroup(f"recoveries:{entries[0].key}", tuple(e.device for e in entries), wall)
            )
            return
        while held:
            dev, entry = next(iter(held.items()))
            if not flush and now - entry.held_at < window:
                break
            del held[dev]
            self._open.pop(dev, None)
            out.append(ResolveAlert(entry.key, entry.device, Event.RECOVERED))

    def _tick_incidents(self, now: float, wall: float, out: list[Intent]) -> None:
        window = self.options.storm_window
        for incident in list(self._incidents.values()):
            total = len(incident.members)
            back = len(incident.recovered)
            if back >= total:
                still: list[str] = []
            elif (
                back
                and now - incident.last_change >= 3 * window
                and now - incident.last_drop >= window
            ):
                still = [d for d in incident.members if d not in incident.recovered]
            else:
                continue
            del self._incidents[incident.key]
            for dev in incident.members:
                self._member.pop(dev, None)
            out.append(ResolveOutage(incident.key, wall, total, back, tuple(still)))
            if still:
                # A5: fed back as drops that are due now, ahead of everything held.
                refed = {
                    dev: _Held(
                        f"{dev}:after:{incident.key}",
                        incident.members[dev],
                        Severity.CRITICAL,
                        now - window,
                    )
                    for dev in still
                }
                self._held_down = {**refed, **self._held_down}

    def _tick_flapping(self, now: float, out: list[Intent]) -> None:
        quiet_for = self.options.flap_window
        for dev, phase in list(self._flapping.items()):
            if now - phase.last_change < quiet_for:
                continue
            del self._flapping[dev]
            self._flips.pop(dev, None)
            view = self._open.get(dev)
            if view is None:
                continue
            if phase.level is Level.DOWN:
                view.flapping = False
                view.state = phase.device.state
                out.append(
                    UpdateAlert(
                        phase.key, phase.device, view.severity, Event.STABLE, flapping=False
                    )
                )
            else:
                del self._open[dev]
                out.append(ResolveAlert(phase.key, phase.device, Event.STABLE))

    def _prune_changes(self, now: float) -> None:
        self._last_prune = now
        horizon = now - self.options.flap_window
        stale = [dev for dev, changes in self._flips.items() if changes[-1][0] < horizon]
        for dev in stale:
            del self._flips[dev]

    # ---------------------------------------------------------------------- helpers

    def _absorbing_incident(self, now: float) -> _Incident | None:
        window = self.options.storm_window
        best: _Incident | None = None
        for incident in self._incidents.values():
            if now - incident.last_drop < window and (
                best is None or incident.last_drop > best.last_drop
            ):
                best = incident
        return best

    def _silenced(self, dev: str, context: DeviceContext, wall: float) -> str | None:
        quiet = self._quiet
        if not quiet.windows and not quiet.mutes:
            return None
        at = datetime.fromtimestamp(wall, UTC)
        return quiet.silenced_by(dev, context.device_class, context.tags, at)

    def _remember_silenced(self, entry: _Silenced) -> None:
        dev = entry.device.device_id
        self._forget_silenced(dev)
        self._silenced_down[dev] = entry
        self._silenced_by.setdefault(entry.by, set()).add(dev)

    def _forget_silenced(self, dev: str) -> None:
        entry = self._silenced_down.pop(dev, None)
        if entry is None:
            return
        devices = self._silenced_by.get(entry.by)
        if devices is not None:
            devices.discard(dev)
            if not devices:
                del self._silenced_by[entry.by]

    def _unsilence(self, now: float, wall: float) -> None:
        """A9: silenced drops whose silence is over are held as drops from now on."""
        if not self._silenced_down:
            return
        if now - self._last_silence_check >= _FLIP_PRUNE_EVERY:
            # Now and then every one: a device's tags or class may have left a scope.
            self._last_silence_check = now
            candidates = list(self._silenced_down)
        else:
            active = self._quiet.labels_in_effect(datetime.fromtimestamp(wall, UTC))
            candidates = [
                dev
                for label, devices in self._silenced_by.items()
                if label not in active
                for dev in devices
            ]
        for dev in candidates:
            entry = self._silenced_down[dev]
            by = self._silenced(dev, entry.device.context, wall)
            if by == entry.by:
                continue
            self._forget_silenced(dev)
            if by is not None:
                # Another window or mute still covers it.
                self._remember_silenced(_Silenced(entry.key, entry.device, entry.severity, by))
            else:
                self._held_down[dev] = _Held(entry.key, entry.device, entry.severity, now)

    def _unseen_changed(
        self,
        tr: Transition,
        state: DeviceState,
        level: Level,
        *,
        key: str,
        down_before: bool,
        now: float,
    ) -> None:
        """A10: a change of a device never seen alive."""
        dev = state.device_id
        if level is Level.DOWN:
            seen = DeviceState(
                dev,
                state.state,
                f"{tr.reason.value}; never seen alive by this database",
                state.at_wall,
                state.context,
            )
            held = self._held_unseen.get(dev)
            if held is not None:
                held.device = seen
            elif not down_before and dev not in self._open:
                self._held_unseen[dev] = _Held(key, seen, Severity.WARNING, now)
        elif level is Level.QUIET:
            self._held_unseen.pop(dev, None)

    def _release_unseen(self, now: float, wall: float, out: list[Intent], *, flush: bool) -> None:
        held = self._held_unseen
        window = self.options.storm_window
        while held:
            dev, entry = next(iter(held.items()))
            if not flush and now - entry.held_at < window:
                break
            del held[dev]
            if self._silenced(dev, entry.device.context, wall) is not None:
                continue
            self._open[dev] = _OpenView(entry.severity, entry.device.state)
            out.append(OpenAlert(entry.key, entry.device, entry.severity, never_seen=True))

    def _drop_device(self, dev: str) -> None:
        self._never_seen.discard(dev)
        self._held_unseen.pop(dev, None)
        self._forget_silenced(dev)
        self._held_down.pop(dev, None)
        self._held_up.pop(dev, None)
        self._flips.pop(dev, None)
        self._flapping.pop(dev, None)
        incident_key = self._member.pop(dev, None)
        if incident_key is not None:
            incident = self._incidents[incident_key]
            incident.members.pop(dev, None)
            incident.recovered.discard(dev)

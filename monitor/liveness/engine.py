"""The liveness engine: one small state machine per device, one deadline scheduler.

Pure (model: h11's ``_state.py``, healthchecks' ``get_status()``): no asyncio, no
database, no MQTT, no clock reads. Calls that need time take ``now`` (monotonic
seconds, for deadlines) and ``wall`` (UTC epoch seconds, for what is stored and
shown). The shell feeds events in and carries out the transitions that come back.

Rules
=====

Timing
  R1  A device is judged by an interval: the ops override, else its class's interval,
      else the interval it announces in heartbeats, else ``default_interval`` (30 s).
      Its class (``Policy``; unconfigured class names use ``default``) gives ``grace``
      (10 s), ``missed_limit`` (3) and ``lost_after`` (24 h). See ``policy.py``.
  R2  Verdicts use the monitor's receive clock. A device's ``ts`` only feeds figures,
      never a verdict: a running estimate of its clock offset per session
      (``clock.py``; ``DeviceSnapshot.clock_offset``) and ``EventResult.latency``
      (receive wall - ts, minus the offset when the clock is skewed).
  R3  Each state has at most one deadline, counted from the device's *anchor*:
      unknown/online -> late at anchor + interval + grace;
      late -> stale at anchor + interval x missed_limit + grace;
      stale/offline -> lost at anchor + lost_after (anchor = when stale/offline began);
      lost/maintenance: none. A tick moves a device straight to the state its evidence
      implies (online -> stale with no late step if both deadlines passed), stamped
      with the wall time the deadline passed. Deadlines only move devices down: a
      device whose state is already worse than its deadlines imply keeps its state.

Sessions
  R4  A session is one connection. The engine remembers the current session, whether
      it has *ended* (its will or shutdown arrived), and the session before it.
      Messages naming an ended session or the previous one are STALE_SESSION: ignored.
      Any other unseen session means the device reconnected: it is adopted.

Fresh heartbeats
  R5  Current session with seq <= last seq: DUPLICATE, nothing changes.
  R6  Accepted (current or newly adopted session): last_seen = now, deadlines
      re-armed from now, state -> online -- except in maintenance, which stays
      (last_seen still updates). A device never seen before starts online.

Retained replays (RETAIN flag on subscribe) are claims, not fresh evidence
  R7  A retained heartbeat or online presence for a device never seen registers it as
      unknown, deadlines counted from now. For a known device a claim never refreshes
      deadlines or state; a claim naming an unseen session is recorded as the current
      session (the broker keeps only the latest retained message, so the device did
      reconnect), which also discards a held will.

Presence
  R8  Fresh online, new session: adopted, online, deadlines re-armed from now (the
      first heartbeat is due within interval + grace). Fresh online for the current
      session confirms an unknown device (-> online) and changes nothing else.
  R9  Offline for the current session ends that session at once. Shutdown -> offline
      now. A will (connection-lost) is held for ``will_hold`` (2 s): the broker
      publishes an old connection's will when a new connection takes over, possibly
      before the new ``online`` arrives. A new session within the hold discards the
      will; otherwise -> offline, stamped with the will's arrival. Timing pauses for
      the device while its will is held.
  R10 A retained offline presence for the current session that arrives while warming
      up is held until warm-up ends, then gives offline stamped with its arrival (the
      lost clock runs from then too). Outside warm-up a retained will is a replay after
      a blind period and is held as R15 says; a retained shutdown counts at once.
  R11 Offline naming any other session: STALE_SESSION. A device already offline or
      lost only has its session ended; in maintenance likewise
      (IGNORED_IN_MAINTENANCE).

Maintenance
  R12 Entering: -> maintenance, timing suspended, a held will dropped (its session
      stays ended). Leaving: offline if its session ended; online if a fresh heartbeat
      came within interval + grace (late deadline from that heartbeat, never before
      now + grace); else stale, with the lost clock starting now (time in maintenance
      is not time missing).

Start-up
  R13 ``load`` keeps each persisted device's state (status topics do not flap on a
      restart) but marks it unconfirmed; deadlines come from the persisted
      last_seen/since, converted as mono = now - (wall - persisted_wall).
  R14 ``start_warmup``: until it ends (max over classes of interval + grace, or the
      given duration) no device *without fresh evidence* times out; fresh wills still
      resolve. The first tick at or after the end gives each such device its verdict
      once: a held retained will -> offline, as of the will's arrival (R10); else
      whatever its deadlines imply (R3).
      Warm-up exists to give unconfirmed devices time to show up. A device with fresh
      evidence since start (a heartbeat, presence or will: ``confirmed``) is judged by
      its own deadlines during warm-up too, so one that beat at start and then fell
      silent goes late, then stale, as it would at any other time.
      Devices that beat during warm-up are online with no transition if they were.

Blind (the monitor lost the broker)
  R15 ``suspend`` freezes every timeout. ``resume`` guarantees no deadline fires
      before now + interval + grace: devices get time to reconnect; nothing from the
      blind period becomes a transition. Applied lazily as entries pop, so resuming
      costs O(1). Wills are held by the same rule when they belong to the blind
      period -- held when it began, arrived during it, or retained and replayed after
      it (outside warm-up the broker replays retained messages only on a
      resubscription): a broker that goes down publishes the will of every connected
      device, and each device needs its reconnect time, not ``will_hold``, to show its
      new session. Any other held will gets at least now + will_hold.
  R16 Warm-up takes precedence over that re-arm, whatever order the shell calls them
      in (a shell typically starts blind, then on its first connection starts warm-up
      and resumes): warm-up already gives every device time to show up, and its end
      must judge persisted evidence, not a re-arm. So ``start_warmup`` cancels a
      pending re-arm, and ``resume`` during warm-up instead extends warm-up to at
      least now + its length. Confirmed devices, judged during warm-up (R14), still
      get the re-arm of a resume during warm-up: their evidence is from this run.

Figures
  R18 Missed heartbeats are counted while they are missed, inside one session
      (``missed.py``): ``count_missed`` credits late and stale devices as their beats
      fall due; the next heartbeat of the session tops the count up
      (``EventResult.missed``). Nothing is counted across a new session, a clean
      shutdown or will, a monitor restart, maintenance or a blind period (heartbeats
      read while blind count no gap), nor for an offline or lost device.

Ops
  R17 Overrides and class changes recompute deadlines at once (a shorter interval can
      make a device late on the next tick). Ops commands naming an untracked device
      raise :class:`UnknownDevice`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Final

from device_client.protocol import Heartbeat, OfflineReason, Presence, PresenceState
from monitor.liveness.clock import SINK as CLOCK_SINK
from monitor.liveness.clock import STEP as CLOCK_STEP
from monitor.liveness.clock import TOLERANCE as CLOCK_TOLERANCE
from monitor.liveness.clock import latency as clock_latency
from monitor.liveness.clock import skewed
from monitor.liveness.clock import update as clock_update
from monitor.liveness.errors import InvalidPolicy, UnknownDevice
from monitor.liveness.missed import missed_between
from monitor.liveness.outcomes import Cadence, EventResult, Outcome, StatusView
from monitor.liveness.persisted import REASON_OF, STATE_OF, PersistedDevice
from monitor.liveness.policy import (
    DEFAULT_CLASS,
    DEFAULT_INTERVAL,
    DEFAULT_WILL_HOLD,
    Policy,
    check_interval,
)
from monitor.liveness.records import DeviceRecord, HeldWill
from monitor.liveness.scheduler import DeadlineScheduler
from monitor.liveness.snapshot import DeviceSnapshot
from monitor.liveness.states import (
    ALLOWED_TRANSITIONS,
    Reason,
    State,
    Transition,
    check_transition,
)

INF: Final = math.inf

_UNKNOWN: Final = State.UNKNOWN
_ONLINE: Final = State.ONLINE
_LATE: Final = State.LATE
_STALE: Final = State.STALE
_OFFLINE: Final = State.OFFLINE
_LOST: Final = State.LOST
_MAINTENANCE: Final = State.MAINTENANCE

# Results that carry no transitions are shared: no allocation on the common ignore paths.
_DUPLICATE: Final = EventResult(Outcome.DUPLICATE)
_STALE_SESSION: Final = EventResult(Outcome.STALE_SESSION)
_RETAINED_CLAIM: Final = EventResult(Outcome.RETAINED_CLAIM)

# Announced intervals are shared between devices like class names; the cap keeps a
# fleet announcing odd values from growing the cache without bound.
_SHARED_INTERVALS_MAX: Final = 256

_TransitionList = list[Transition]


class LivenessEngine:
    """All devices' liveness state. Not thread-safe: one owner (the shell's loop)."""

    def __init__(
        self,
        *,
        classes: Mapping[str, Policy] | None = None,
        default_interval: float = DEFAULT_INTERVAL,
        will_hold: float = DEFAULT_WILL_HOLD,
    ) -> None:
        self._default_interval = check_interval(default_interval, field="default_interval")
        if not (isinstance(will_hold, int | float) and 0 <= will_hold < INF):
            raise InvalidPolicy("must be a finite number of seconds >= 0", field="will_hold")
        self._will_hold = float(will_hold)
        self._classes = _normalise_classes(classes or {})
        self._devices: dict[str, DeviceRecord] = {}
        self._timers: DeadlineScheduler[DeviceRecord] = DeadlineScheduler(self._devices.get)
        self._held: dict[str, HeldWill] = {}
        self._hold_timers: DeadlineScheduler[HeldWill] = DeadlineScheduler(self._held.get)
        self._counts: dict[State, int] = dict.fromkeys(State, 0)
        self._dirty: set[str] = set()
        # Late and stale devices: the ones owing heartbeats right now (R18).
        self._silent: dict[str, DeviceRecord] = {}
        # When the monitor last regained sight: owed beats count from then at the
        # earliest (R18).
        self._sight_since = -INF
        self._skewed = 0  # devices whose clock offset is beyond clock.TOLERANCE
        self._shared_intervals: dict[float, float] = {}
        self._warmup_end: float | None = None
        self._warmup_length = 0.0
        self._blind_since: float | None = None
        self._blind_began = -INF  # when the latest blind period began (R15, wills)
        # Floors left by the last resume (R15): device deadlines and held wills apart,
        # because warm-up cancels only the former (R16).
        self._deadlines_resumed_at = -INF
        self._wills_resumed_at = -INF
        # The floor of a resume during warm-up: only for confirmed devices (R16).
        self._confirmed_resumed_at = -INF

    # ------------------------------------------------------------------ properties

    @property
    def classes(self) -> Mapping[str, Policy]:
        return MappingProxyType(self._classes)

    @property
    def default_interval(self) -> float:
        return self._default_interval

    @property
    def will_hold(self) -> float:
        return self._will_hold

    @property
    def warming_up(self) -> bool:
        """True from ``start_warmup`` until the tick that ends it."""
        return self._warmup_end is not None

    @property
    def blind_since(self) -> float | None:
        """Monotonic time of ``suspend`` while suspended, else None."""
        return self._blind_since

    # ---------------------------------------------------------------------- events

    def heartbeat(
        self, device_id: str, hb: Heartbeat, now: float, wall: float, *, retained: bool = False
    ) -> EventResult:
        """A heartbeat received at ``now``/``wall`` (R5-R7)."""
        dev = self._devices.get(device_id)
        if retained:
            return self._retained_heartbeat(device_id, dev, hb, now, wall)
        out: _TransitionList = []
        if dev is None:
            dev = self._register(device_id, _ONLINE, hb.session, now, wall, out=out)
            outcome = Outcome.ACCEPTED
            before: Cadence | None = None
        else:
            session = hb.session
            if session == dev.session:
                if dev.ended:
                    return _STALE_SESSION
                last_seq = dev.last_seq
                if last_seq is not None and hb.seq <= last_seq:
                    return _DUPLICATE
                outcome = Outcome.ACCEPTED
            elif session == dev.prev_session:
                return _STALE_SESSION
            else:
                outcome = Outcome.RECONNECTED
            before = (dev.session, dev.last_seen_wall, self._interval(dev))
            if outcome is Outcome.RECONNECTED:
                self._adopt(dev, session, now)
        missed, gap = self._owed_at_heartbeat(dev, now)
        dev.missed_from = now
        dev.missed_counted = 0
        dev.last_seq = hb.seq
        dev.last_seen_mono = now
        dev.last_seen_wall = wall
        dev.anchor = now
        dev.confirmed = True
        dev.reported = (hb.fw, hb.metrics)
        if hb.interval != dev.announced:
            dev.announced = self._share_interval(hb.interval)
        state = dev.state
        if state is not _ONLINE and state is not _MAINTENANCE:
            self._move(dev, _ONLINE, Reason.HEARTBEAT, wall, out)
        self._rearm(dev)
        self._dirty.add(device_id)
        latency = None if hb.ts is None else self._clock_sample(dev, hb.ts, wall)
        return EventResult(outcome, tuple(out), latency, missed, gap, before)

    def presence(
        self,
        device_id: str,
        presence: Presence,
        now: float,
        wall: float,
        *,
        retained: bool = False,
    ) -> EventResult:
        """A presence message or will received at ``now``/``wall`` (R7-R11)."""
        dev = self._devices.get(device_id)
        if presence.state is PresenceState.ONLINE:
            return self._presence_online(
                device_id, dev, presence.session, now, wall, retained=retained
            )
        reason = presence.reason or OfflineReason.CONNECTION_LOST
        return self._presence_offline(
            device_id, dev, presence.session, now, wall, reason=reason, retained=retained
        )

    def tick(self, now: float, wall: float, *, limit: int | None = None) -> list[Transition]:
        """Fire every deadline due at ``now``. Cost is proportional to due entries.

        ``limit`` bounds how many device deadlines one call judges, earliest first (held
        wills, a handful, are always all judged): in a mass outage the shell hands on
        each batch before judging the next, and :meth:`due` says whether more wait.
        Each transition is stamped with when its deadline passed either way.
        """
        out: _TransitionList = []
        if self._blind_since is not None:
            return out
        resumed = self._wills_resumed_at
        will_floor = resumed + self._will_hold
        for device_id, held in self._hold_timers.pop_due(now):
            floor = will_floor
            if held.replayed or (
                held.mono + self._will_hold >= self._blind_began and held.mono <= resumed
            ):
                # The will belongs to the blind period (R15): the device gets as long to
                # show its new session as a device's deadline gets after resuming.
                dev = self._devices[device_id]
                floor = max(floor, resumed + self._interval(dev) + dev.policy.grace)
            if held.deadline < floor:
                self._hold_timers.set(device_id, held, floor)
                continue
            self._resolve_will(device_id, held, out=out)
        warmup_end = self._warmup_end
        if warmup_end is not None:
            if now < warmup_end:
                self._tick_warming_up(now, wall, warmup_end, out=out, limit=limit)
                return out
            self._end_warmup(out=out)
        for _, dev in self._timers.pop_due(now, limit):
            self._expire(dev, now, wall, out=out)
        return out

    def due(self, now: float) -> bool:
        """Whether a :meth:`tick` at ``now`` may find deadlines due (a limited tick left
        some). Cheap; may say True for entries that turn out to be moved or dropped."""
        if self._blind_since is not None:
            return False
        return self._timers.next_due() <= now or self._hold_timers.next_due() <= now

    def set_maintenance(
        self, device_id: str, on: bool, now: float, wall: float
    ) -> list[Transition]:
        """Start or end maintenance for a tracked device (R12). Idempotent."""
        dev = self._require(device_id)
        out: _TransitionList = []
        if on:
            if dev.state is not _MAINTENANCE:
                self._drop_hold(device_id)
                self._move(dev, _MAINTENANCE, Reason.MAINTENANCE_STARTED, wall, out)
                self._rearm(dev)
            return out
        if dev.state is not _MAINTENANCE:
            return out
        interval = self._interval(dev)
        last_seen = dev.last_seen_mono
        if dev.ended:
            new = _OFFLINE
            dev.anchor = now
        elif last_seen is not None and now - last_seen <= interval + dev.policy.grace:
            new = _ONLINE
            # Late deadline from the last heartbeat, but never before now + grace.
            dev.anchor = max(last_seen, now - interval)
        else:
            new = _STALE
            dev.anchor = now
        # Time in maintenance owes no heartbeats (R18).
        dev.missed_from = now
        dev.missed_counted = 0
        self._move(dev, new, Reason.MAINTENANCE_ENDED, wall, out)
        self._rearm(dev)
        return out

    # ------------------------------------------------------------------- lifecycle

    def load(self, snapshots: Iterable[DeviceSnapshot], now: float, wall: float) -> int:
        """Restore persisted devices (R13) from snapshots; see :meth:`load_persisted`."""
        return self.load_persisted(
            (
                (
                    s.device_id,
                    s.state,
                    s.since_wall,
                    s.reason,
                    s.session,
                    s.last_seq,
                    s.last_seen_wall,
                    s.announced_interval,
                    s.override_interval,
                    s.device_class,
                    s.in_maintenance,
                    s.clock_offset,
                )
                for s in snapshots
            ),
            now,
            wall,
        )

    def load_persisted(self, rows: Iterable[PersistedDevice], now: float, wall: float) -> int:
        """Restore persisted devices (R13), given as plain tuples (``persisted.py``).

        Returns how many were added. Ids already tracked are skipped: what the engine saw
        since start is fresher than what the database remembers. Built in bulk for a
        million rows: one record each, and their deadlines added to the scheduler at
        once (one heapify instead of a push per device).
        """
        devices = self._devices
        counts = self._counts
        silent = self._silent
        classes = self._classes
        default_policy = classes[DEFAULT_CLASS]
        default_interval = self._default_interval
        share_interval = self._share_interval
        # Class name -> (interned name, policy): one lookup per row instead of two.
        by_class: dict[str, tuple[str, Policy]] = {}
        entries: list[tuple[float, str]] = []
        skewed_count = 0
        added = 0
        for (
            device_id,
            state_word,
            since_wall,
            reason_word,
            session,
            last_seq,
            last_seen_wall,
            announced,
            override,
            class_name,
            in_maintenance,
            clock_offset,
        ) in rows:
            if device_id in devices:
                continue
            state = _MAINTENANCE if in_maintenance else STATE_OF.get(state_word, _UNKNOWN)
            shared = by_class.get(class_name)
            if shared is None:
                name = sys.intern(class_name)
                shared = by_class[class_name] = (name, classes.get(name, default_policy))
            device_class, policy = shared
            # _to_mono inlined: a persisted wall time on today's monotonic clock.
            last_seen_mono = None
            if last_seen_wall is not None:
                last_seen_mono = min(now, now - (wall - last_seen_wall))
            if state is _STALE or state is _OFFLINE:
                anchor = min(now, now - (wall - since_wall))
            elif last_seen_mono is not None:
                anchor = last_seen_mono
            else:
                anchor = now
            dev = DeviceRecord(
                device_id,
                state,
                since_wall=since_wall,
                device_class=device_class,
                policy=policy,
                anchor=anchor,
            )
            dev.reason = None if reason_word is None else REASON_OF.get(reason_word)
            dev.session = session
            # An offline device's session ended with its will or shutdown; for the other
            # states the database cannot tell, and a heartbeat is the stronger evidence.
            dev.ended = state is _OFFLINE
            dev.last_seq = last_seq
            dev.last_seen_mono = last_seen_mono
            dev.last_seen_wall = last_seen_wall
            if announced is not None:
                dev.announced = share_interval(announced)
            dev.override = override
            if clock_offset is not None:
                dev.clock_offset = clock_offset
                skewed_count += skewed(clock_offset)
            devices[device_id] = dev
            counts[state] += 1
            if state is _LATE or state is _STALE:
                silent[device_id] = dev
            # _rearm inlined (a device just loaded holds no will).
            if override is not None:
                interval = override
            elif policy.interval is not None:
                interval = policy.interval
            elif dev.announced is not None:
                interval = dev.announced
            else:
                interval = default_interval
            when = anchor + self._stage_offset(state, interval, policy)
            if when != INF:
                dev.deadline = dev.queued = when
                entries.append((when, device_id))
            added += 1
        self._skewed += skewed_count
        self._timers.add_many(entries)
        return added

    def start_warmup(self, now: float, duration: float | None = None) -> float:
        """Begin warm-up (R14); returns the monotonic time it ends."""
        if duration is None:
            duration = max(
                (self._default_interval if p.interval is None else p.interval) + p.grace
                for p in self._classes.values()
            )
        elif not 0 <= duration < INF:
            raise InvalidPolicy("must be a finite number of seconds >= 0", field="warmup")
        self._warmup_length = duration
        self._warmup_end = now + duration
        # R16: warm-up supersedes a blind re-arm
        self._deadlines_resumed_at = self._confirmed_resumed_at = -INF
        return self._warmup_end

    def suspend(self, now: float) -> None:
        """The monitor went blind: freeze every timeout (R15)."""
        if self._blind_since is None:
            self._blind_since = now
            self._blind_began = now

    def resume(self, now: float) -> None:
        """The monitor sees again: no deadline before now + interval + grace (R15, R16)."""
        if self._blind_since is None:
            return
        self._blind_since = None
        # Lazy: each entry checks these floors when it pops, so resume is O(1) even
        # with a million devices.
        self._wills_resumed_at = now
        self._sight_since = now
        if self._warmup_end is not None:
            # R16: listen for a full warm-up after regaining sight, then judge evidence.
            self._warmup_end = max(self._warmup_end, now + self._warmup_length)
            self._confirmed_resumed_at = now
        else:
            self._deadlines_resumed_at = now

    def count_missed(self, now: float) -> list[tuple[str, int]]:
        """``(device, beats)`` newly missed by late and stale devices up to ``now`` (R18).

        Cost is proportional to the late and stale devices. Nothing while blind: the
        monitor cannot tell a silent device from its own blindness.
        """
        if self._blind_since is not None:
            return []
        found: list[tuple[str, int]] = []
        held = self._held
        for device_id, dev in self._silent.items():
            if device_id in held:
                continue  # timing pauses while a will decides (R9)
            self._observe_sight(dev)
            owed = missed_between(dev.missed_from, now, self._interval(dev))
            if owed > dev.missed_counted:
                found.append((device_id, owed - dev.missed_counted))
                dev.missed_counted = owed
        return found

    # ------------------------------------------------------------------------- ops

    def set_interval_override(self, device_id: str, seconds: float | None) -> None:
        dev = self._require(device_id)
        dev.override = None if seconds is None else check_interval(seconds, field="override")
        self._rearm(dev)
        self._dirty.add(device_id)

    def set_class(self, device_id: str, name: str) -> None:
        dev = self._require(device_id)
        name = sys.intern(_check_class_name(name))
        dev.device_class = name
        dev.policy = self._policy_for(name)
        self._rearm(dev)
        self._dirty.add(device_id)

    def set_classes(self, classes: Mapping[str, Policy]) -> list[str]:
        """Replace every class policy; deadlines are recomputed (O(devices)).

        Returns the devices whose effective interval changed (their status shows it).
        """
        self._classes = _normalise_classes(classes)
        changed: list[str] = []
        for dev in self._devices.values():
            policy = self._policy_for(dev.device_class)
            if policy is not dev.policy:
                interval = self._interval(dev)
                dev.policy = policy
                self._rearm(dev)
                if self._interval(dev) != interval:
                    changed.append(dev.device_id)
        return changed

    def forget(self, device_id: str) -> bool:
        """Stop tracking a device; returns False if it was not tracked."""
        dev = self._devices.pop(device_id, None)
        if dev is None:
            return False
        self._timers.forget(dev)
        self._drop_hold(device_id)
        self._silent.pop(device_id, None)
        self._drop_clock(dev)
        self._counts[dev.state] -= 1
        self._dirty.discard(device_id)
        return True

    # ----------------------------------------------------------------------- views

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def snapshot(self, device_id: str) -> DeviceSnapshot | None:
        dev = self._devices.get(device_id)
        return None if dev is None else self._snapshot(dev)

    def cadence(self, device_id: str) -> Cadence | None:
        """``(session, last_seen_wall, effective interval)`` of a device, or None.

        The per-heartbeat fast path of :meth:`snapshot` for the shell's inter-arrival
        statistics: three fields instead of a full snapshot.
        """
        dev = self._devices.get(device_id)
        if dev is None:
            return None
        return dev.session, dev.last_seen_wall, self._interval(dev)

    def status_view(self, device_id: str) -> StatusView | None:
        """What a status topic shows of a device, or None: the fast path of
        :meth:`snapshot` for the shell's status publishes (a mass outage makes one per
        transition): ``(state, since_wall, last_seen_wall, reason, session, effective
        interval, class)``."""
        dev = self._devices.get(device_id)
        if dev is None:
            return None
        return (
            dev.state,
            dev.since_wall,
            dev.last_seen_wall,
            dev.reason,
            dev.session,
            self._interval(dev),
            dev.device_class,
        )

    def device_ids(self) -> Iterator[str]:
        """Every tracked device's id; do not feed events while iterating."""
        return iter(self._devices)

    def snapshots(self) -> Iterator[DeviceSnapshot]:
        """Every device; do not feed events while iterating."""
        for dev in self._devices.values():
            yield self._snapshot(dev)

    @property
    def clock_skewed(self) -> int:
        """Devices whose clock offset is beyond ``clock.TOLERANCE`` (O(1))."""
        return self._skewed

    def counts(self) -> dict[State, int]:
        """Devices per state, maintained incrementally (O(1))."""
        return dict(self._counts)

    def drain_dirty(self) -> list[DeviceSnapshot]:
        """Snapshots of devices whose persisted fields changed since the last drain.

        One per device however many events touched it, so a write-behind flush writes
        at most one row per device.
        """
        dirty, self._dirty = self._dirty, set()
        devices = self._devices
        drained = []
        for device_id in dirty:
            dev = devices[device_id]
            drained.append(self._snapshot(dev))
            dev.reported = None  # handed over: a million devices do not keep their metrics
        return drained

    def catch_up(self, device_id: str, told: State | None) -> list[Transition]:
        """What brings ``told`` -- the state the world was last told -- to the device's
        state: nothing when they agree or the device is unknown.

        For a replica taking over a partition (docs/cluster.md): it kept the device's
        state from the same stream while another replica acted for it, and the database
        says what that replica told before it stopped. A device that died in the gap is
        reported once, by the one that takes over. Stamped with when the engine's state
        began (the evidence's time, not the takeover's). A device the world never heard
        of first appears as first seen. The device's record is unchanged.
        """
        dev = self._devices.get(device_id)
        if dev is None or dev.state is told:
            return []
        new, reason = dev.state, dev.reason or Reason.FIRST_SEEN
        out: list[Transition] = []
        if told is None and reason is not Reason.FIRST_SEEN:
            # A record starts first seen; what followed it is a second step.
            first = _UNKNOWN if new is _UNKNOWN else _ONLINE
            out.append(
                Transition(device_id, None, first, Reason.FIRST_SEEN, dev.since_wall, dev.session)
            )
            told = first
            if told is new:
                return out
        if reason not in ALLOWED_TRANSITIONS.get((told, new), ()):
            # No legal change leads there (told lost, now late): the row and status are
            # rewritten with the state, without a transition that could not happen.
            return out
        out.append(Transition(device_id, told, new, reason, dev.since_wall, dev.session))
        return out

    def listen_first(self, device_ids: Iterable[str], now: float) -> None:
        """No deadline of these devices before ``now`` + interval + grace (R14 for some
        devices only): a replica that takes a partition over without having heard it
        (a broker routing by partition) first gives its devices time to be heard, as
        warm-up does at start. Stale, offline, lost and maintenance keep their clocks.
        """
        devices = self._devices
        for device_id in device_ids:
            dev = devices.get(device_id)
            if dev is None or dev.anchor >= now:
                continue
            state = dev.state
            if state is _ONLINE or state is _UNKNOWN or state is _LATE:
                dev.anchor = now
                self._rearm(dev)

    def down_since(
        self, device_ids: Iterable[str], states: Collection[State], since_wall: float
    ) -> list[DeviceSnapshot]:
        """Snapshots of the devices among ``device_ids`` in one of ``states`` with a
        reason, whose state began at or after ``since_wall``.

        A replica taking over a partition looks for drops its previous owner may have
        left undecided: a handful among 100,000 devices, so only those are snapshotted
        (a snapshot of every device took most of a takeover, bench/bench_takeover.py).
        """
        devices = self._devices
        found: list[DeviceSnapshot] = []
        for device_id in device_ids:
            dev = devices.get(device_id)
            if (
                dev is not None
                and dev.state in states
                and dev.reason is not None
                and dev.since_wall >= since_wall
            ):
                found.append(self._snapshot(dev))
        return found

    def touch(self, device_ids: Iterable[str]) -> None:
        """Mark devices dirty: their persisted fields go to the next :meth:`drain_dirty`
        (a replica taking over a partition writes the rows its owner may not have)."""
        devices = self._devices
        self._dirty.update(d for d in device_ids if d in devices)

    def heap_size(self) -> int:
        """Scheduler entries held (live and garbage): for memory metrics."""
        return len(self._timers) + len(self._hold_timers)

    # -------------------------------------------------------------- event handlers

    def _retained_heartbeat(
        self, device_id: str, dev: DeviceRecord | None, hb: Heartbeat, now: float, wall: float
    ) -> EventResult:
        if dev is None:
            out: _TransitionList = []
            dev = self._register(device_id, _UNKNOWN, hb.session, now, wall, out=out)
            dev.last_seq = hb.seq
            dev.announced = self._share_interval(hb.interval)
            self._rearm(dev)
            return EventResult(Outcome.RETAINED_CLAIM, tuple(out))
        session = hb.session
        if session == dev.session:
            return _RETAINED_CLAIM
        if session == dev.prev_session:
            return _STALE_SESSION
        self._adopt(dev, session, now)
        dev.last_seq = hb.seq
        self._rearm(dev)
        self._dirty.add(device_id)
        return _RETAINED_CLAIM

    def _presence_online(
        self,
        device_id: str,
        dev: DeviceRecord | None,
        session: str,
        now: float,
        wall: float,
        *,
        retained: bool,
    ) -> EventResult:
        out: _TransitionList = []
        if dev is None:
            dev = self._register(
                device_id, _UNKNOWN if retained else _ONLINE, session, now, wall, out=out
            )
            dev.confirmed = not retained
            self._rearm(dev)
            return EventResult(Outcome.RETAINED_CLAIM if retained else Outcome.ACCEPTED, tuple(out))
        if session == dev.session and not dev.ended:
            if retained:
                return _RETAINED_CLAIM
            dev.confirmed = True
            if dev.state is _UNKNOWN:
                dev.anchor = now
                self._move(dev, _ONLINE, Reason.PRESENCE_ONLINE, wall, out)
                self._rearm(dev)
            return EventResult(Outcome.ACCEPTED, tuple(out))
        if session in (dev.session, dev.prev_session):
            return _STALE_SESSION
        self._adopt(dev, session, now)
        self._dirty.add(device_id)
        if retained:
            self._rearm(dev)
            return _RETAINED_CLAIM
        dev.confirmed = True
        state = dev.state
        if state is not _MAINTENANCE:
            dev.anchor = now
            if state is not _ONLINE:
                self._move(dev, _ONLINE, Reason.PRESENCE_ONLINE, wall, out)
        self._rearm(dev)
        return EventResult(Outcome.RECONNECTED, tuple(out))

    def _presence_offline(
        self,
        device_id: str,
        dev: DeviceRecord | None,
        session: str,
        now: float,
        wall: float,
        *,
        reason: OfflineReason,
        retained: bool,
    ) -> EventResult:
        out: _TransitionList = []
        if dev is None:
            # A device first heard of through its will: track it, then judge the will
            # like any other for the current session.
            dev = self._register(device_id, _UNKNOWN, session, now, wall, out=out)
        elif session != dev.session or dev.ended:
            if retained and session == dev.session:
                # The retained will of a session we already know ended: it agrees.
                return _RETAINED_CLAIM
            return _STALE_SESSION
        dev.ended = True
        if not retained:
            dev.confirmed = True
        state = dev.state
        if state is _MAINTENANCE:
            outcome = Outcome.RETAINED_CLAIM if retained else Outcome.IGNORED_IN_MAINTENANCE
            return EventResult(outcome, tuple(out))
        if state is _OFFLINE or state is _LOST:
            outcome = Outcome.RETAINED_CLAIM if retained else Outcome.ACCEPTED
            return EventResult(outcome, tuple(out))
        if retained and self._warmup_end is not None and now < self._warmup_end:
            self._hold(dev, reason, now, wall, until_warmup=True)
            return EventResult(Outcome.WILL_HELD, tuple(out))
        if reason is OfflineReason.SHUTDOWN:
            dev.anchor = now
            self._move(dev, _OFFLINE, Reason.SHUTDOWN, wall, out)
            self._rearm(dev)
            return EventResult(Outcome.ACCEPTED, tuple(out))
        self._hold(dev, reason, now, wall, until_warmup=False, replayed=retained)
        return EventResult(Outcome.WILL_HELD, tuple(out))

    # ---------------------------------------------------------------- clock offset

    def _clock_sample(self, dev: DeviceRecord, ts: float, wall: float) -> float:
        """Feed one fresh heartbeat's ``ts`` to the estimate; returns its latency (R2)."""
        sample = ts - wall
        offset = dev.clock_offset
        if offset is None:
            dev.clock_offset = sample
            self._skewed += skewed(sample)
            return clock_latency(wall, ts, sample)
        # clock.update's two common branches inlined: this runs on every heartbeat.
        if sample >= offset:
            new = judged_by = sample
            dev.clock_step = None
        elif offset - sample <= CLOCK_STEP:
            new = offset + (sample - offset) * CLOCK_SINK
            judged_by = offset
            dev.clock_step = None
        else:
            new, judged_by, dev.clock_step = clock_update(offset, sample, dev.clock_step)
        dev.clock_offset = new
        if (-CLOCK_TOLERANCE <= new <= CLOCK_TOLERANCE) != (
            -CLOCK_TOLERANCE <= offset <= CLOCK_TOLERANCE
        ):
            self._skewed += skewed(new) - skewed(offset)
        if -CLOCK_TOLERANCE <= judged_by <= CLOCK_TOLERANCE:
            return -sample
        return judged_by - sample

    def _drop_clock(self, dev: DeviceRecord) -> None:
        if dev.clock_offset is not None:
            self._skewed -= skewed(dev.clock_offset)
            dev.clock_offset = None
            dev.clock_step = None

    # --------------------------------------------------------------- missed beats

    def _observe_sight(self, dev: DeviceRecord) -> None:
        """Owed beats count from the last regained sight at the earliest (R18)."""
        if dev.missed_from < self._sight_since:
            dev.missed_from = self._sight_since
            dev.missed_counted = 0

    def _owed_at_heartbeat(self, dev: DeviceRecord, now: float) -> tuple[int, float | None]:
        """``(missed not yet counted, gap)`` for an accepted heartbeat, before it counts."""
        state = dev.state
        if state is _MAINTENANCE or state is _OFFLINE or state is _LOST:
            return 0, None
        if self._blind_since is not None:
            # Read while blind (a backlog after a stall or a lost link): the gap is the
            # monitor's, not the device's.
            return 0, None
        self._observe_sight(dev)
        ref = dev.missed_from
        last = dev.last_seen_mono
        # The gap is an inter-arrival time only if the last beat is the reference (same
        # session, this process, no blind period or maintenance since).
        gap = None if last is None or last < ref else now - last
        owed = missed_between(ref, now, self._interval(dev))
        return max(0, owed - dev.missed_counted), gap

    # -------------------------------------------------------------- deadline logic

    def _expire(self, dev: DeviceRecord, now: float, wall: float, out: _TransitionList) -> None:
        """A device's deadline passed: move it to what its evidence implies (R3)."""
        interval = self._interval(dev)
        policy = dev.policy
        resumed_at = self._deadlines_resumed_at
        if dev.confirmed and self._confirmed_resumed_at > resumed_at:
            resumed_at = self._confirmed_resumed_at
        floor = resumed_at + interval + policy.grace
        if dev.deadline < floor:
            # Came due during (or just after) a blind period: re-arm at the floor (R15).
            offset = self._stage_offset(dev.state, interval, policy)
            anchor = floor - offset
            # Rounding could leave anchor + offset a hair below the floor, and then the
            # device would be deferred again on every tick, forever.
            while anchor + offset < floor:
                anchor = math.nextafter(anchor, INF)
            dev.anchor = anchor
            self._rearm(dev)
            return
        state = dev.state
        anchor = dev.anchor
        if state is _ONLINE or state is _UNKNOWN or state is _LATE:
            stale_at = anchor + policy.stale_after(interval)
            lost_at = stale_at + policy.lost_after
            late_at = anchor + policy.late_after(interval)
            if now >= lost_at:
                self._move(dev, _LOST, Reason.GONE, _wall_at(lost_at, now, wall, dev), out)
            elif now >= stale_at:
                dev.anchor = stale_at
                at_wall = _wall_at(stale_at, now, wall, dev)
                self._move(dev, _STALE, Reason.STOPPED_BEATING, at_wall, out)
            elif state is not _LATE and now >= late_at:
                at_wall = _wall_at(late_at, now, wall, dev)
                self._move(dev, _LATE, Reason.MISSED_HEARTBEATS, at_wall, out)
        elif state is _STALE or state is _OFFLINE:
            lost_at = anchor + policy.lost_after
            if now >= lost_at:
                self._move(dev, _LOST, Reason.GONE, _wall_at(lost_at, now, wall, dev), out)
        self._rearm(dev)

    def _tick_warming_up(
        self,
        now: float,
        wall: float,
        warmup_end: float,
        out: _TransitionList,
        limit: int | None,
    ) -> None:
        """Judge confirmed devices by their deadlines; the rest wait for the end (R14)."""
        timers = self._timers
        for device_id, dev in timers.pop_due(now, limit):
            if dev.confirmed:
                self._expire(dev, now, wall, out=out)
            else:
                # Popped once, then parked until the end: no per-tick cost meanwhile.
                timers.set(device_id, dev, warmup_end)

    def _end_warmup(self, out: _TransitionList) -> None:
        self._warmup_end = None
        waiting = [(key, held) for key, held in self._held.items() if held.until_warmup]
        for device_id, held in waiting:
            self._resolve_will(device_id, held, out=out)

    def _resolve_will(self, device_id: str, held: HeldWill, out: _TransitionList) -> None:
        """A held will was not overtaken by a new session: the device is offline."""
        self._drop_hold(device_id)
        dev = self._devices[device_id]
        # Stamped with the will's arrival, also for one replayed at start-up and held
        # through warm-up: the connection was dead by then (when it died before is
        # unknown), and the warm-up end is only when the monitor chose to judge.
        at_wall = max(held.wall, dev.since_wall)
        dev.anchor = held.mono
        reason = (
            Reason.SHUTDOWN if held.reason is OfflineReason.SHUTDOWN else Reason.CONNECTION_LOST
        )
        self._move(dev, _OFFLINE, reason, at_wall, out)
        self._rearm(dev)

    def _hold(
        self,
        dev: DeviceRecord,
        reason: OfflineReason,
        now: float,
        wall: float,
        *,
        until_warmup: bool,
        replayed: bool = False,
    ) -> None:
        device_id = dev.device_id
        held = HeldWill(reason, mono=now, wall=wall, until_warmup=until_warmup, replayed=replayed)
        self._held[device_id] = held
        if not until_warmup:
            self._hold_timers.set(device_id, held, now + self._will_hold)
        # Timing pauses while the will decides (R9): the will gives a better verdict
        # within seconds, and a late/stale stamped inside the hold would come out of
        # order with the offline stamped at the will's arrival.
        self._rearm(dev)

    def _drop_hold(self, device_id: str) -> None:
        held = self._held.pop(device_id, None)
        if held is not None:
            self._hold_timers.forget(held)

    def _rearm(self, dev: DeviceRecord) -> None:
        """Recompute the device's deadline from its state and anchor."""
        if dev.device_id in self._held:
            when = INF
        else:
            when = dev.anchor + self._stage_offset(dev.state, self._interval(dev), dev.policy)
        self._timers.set(dev.device_id, dev, when)

    @staticmethod
    def _stage_offset(state: State, interval: float, policy: Policy) -> float:
        if state is _ONLINE or state is _UNKNOWN:
            return interval + policy.grace
        if state is _LATE:
            return interval * policy.missed_limit + policy.grace
        if state is _STALE or state is _OFFLINE:
            return policy.lost_after
        return INF

    def _interval(self, dev: DeviceRecord) -> float:
        # resolve_interval() inlined: this runs on every heartbeat.
        if dev.override is not None:
            return dev.override
        if dev.policy.interval is not None:
            return dev.policy.interval
        if dev.announced is not None:
            return dev.announced
        return self._default_interval

    # ---------------------------------------------------------------- record keeping

    def _register(
        self,
        device_id: str,
        state: State,
        session: str,
        now: float,
        wall: float,
        *,
        out: _TransitionList,
    ) -> DeviceRecord:
        check_transition(device_id, None, state, Reason.FIRST_SEEN)
        dev = DeviceRecord(
            device_id,
            state,
            since_wall=wall,
            device_class=DEFAULT_CLASS,
            policy=self._classes[DEFAULT_CLASS],
            anchor=now,
        )
        dev.reason = Reason.FIRST_SEEN
        dev.session = session
        self._devices[device_id] = dev
        self._counts[state] += 1
        self._dirty.add(device_id)
        out.append(Transition(device_id, None, state, Reason.FIRST_SEEN, wall, session))
        return dev

    def _move(
        self, dev: DeviceRecord, new: State, reason: Reason, at_wall: float, out: _TransitionList
    ) -> None:
        old = dev.state
        check_transition(dev.device_id, old, new, reason)
        counts = self._counts
        counts[old] -= 1
        counts[new] += 1
        dev.state = new
        dev.reason = reason
        dev.since_wall = at_wall
        if new is _LATE or new is _STALE:
            self._silent[dev.device_id] = dev
        elif old is _LATE or old is _STALE:
            self._silent.pop(dev.device_id, None)
        self._dirty.add(dev.device_id)
        out.append(Transition(dev.device_id, old, new, reason, at_wall, dev.session))

    def _adopt(self, dev: DeviceRecord, session: str, now: float) -> None:
        """The device reconnected with ``session``: make it current (R4)."""
        if dev.session is not None:
            dev.prev_session = dev.session
        dev.session = session
        dev.ended = False
        dev.last_seq = None
        # A new session owes beats from its start, not from the old one's last (R18).
        dev.missed_from = now
        dev.missed_counted = 0
        # Devices often set their clock when they (re)connect: estimate afresh (R2).
        self._drop_clock(dev)
        # A will held for the old session was the takeover's stale will (R9).
        self._drop_hold(dev.device_id)

    def _require(self, device_id: str) -> DeviceRecord:
        dev = self._devices.get(device_id)
        if dev is None:
            raise UnknownDevice(device_id)
        return dev

    def _policy_for(self, device_class: str) -> Policy:
        classes = self._classes
        return classes.get(device_class, classes[DEFAULT_CLASS])

    def _share_interval(self, seconds: float) -> float:
        shared = self._shared_intervals.get(seconds)
        if shared is not None:
            return shared
        if len(self._shared_intervals) < _SHARED_INTERVALS_MAX:
            self._shared_intervals[seconds] = seconds
        return seconds

    def _snapshot(self, dev: DeviceRecord) -> DeviceSnapshot:
        return DeviceSnapshot(
            device_id=dev.device_id,
            state=dev.state,
            since_wall=dev.since_wall,
            reason=dev.reason,
            session=dev.session,
            last_seq=dev.last_seq,
            last_seen_wall=dev.last_seen_wall,
            announced_interval=dev.announced,
            override_interval=dev.override,
            device_class=dev.device_class,
            in_maintenance=dev.state is _MAINTENANCE,
            effective_interval=self._interval(dev),
            confirmed=dev.confirmed,
            clock_offset=dev.clock_offset,
            fw=None if dev.reported is None else dev.reported[0],
            metrics=None if dev.reported is None else dev.reported[1],
        )


def _wall_at(at_mono: float, now: float, wall: float, dev: DeviceRecord) -> float:
    """The wall time of a past monotonic instant, not before the device's last change.

    Clamped so a wall clock that stepped back cannot order a device's transitions
    backwards.
    """
    return max(dev.since_wall, wall - (now - at_mono))


def _check_class_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidPolicy("must be a non-empty string of at most 64 characters", field="class")
    return name


def _normalise_classes(classes: Mapping[str, Policy]) -> dict[str, Policy]:
    result: dict[str, Policy] = {}
    for name, policy in classes.items():
        if not isinstance(policy, Policy):
            raise InvalidPolicy(f"expected a Policy, got {type(policy).__name__}", field=name)
        result[sys.intern(_check_class_name(name))] = policy
    result.setdefault(DEFAULT_CLASS, Policy())
    return result

"""The alerting shell: wires the pure core into the monitor process.

The monitor calls :meth:`Alerting.on_transition` for every transition (synchronously,
from its event loop) and runs :meth:`Alerting.run` as one background task, which holds:

* a tick loop: the core's hold/storm/flapping timers; nothing is released while the
  engine warms up or is blind (``settled``);
* a writer: hands the core's intents, in order, to :class:`AlertActions`
  (``actions.py``: one transaction each, then the event on ``{root}/alerts``, not
  retained). Actions are idempotent, so one retried after a database error cannot
  notify twice;
* the follow-up pass: repeats and escalations (``followup.py``), compare-and-set
  against acknowledgements made meanwhile;
* a configuration poll: rules, channel names, maintenance windows, mutes, device tags;
* the outbox worker (``outbox.py``), which delivers through apprise;
* at-risk alerts (core A11): after each pass of the risk scorer (``monitor/risk``) the
  tick loop hands the core the flagged devices that an ``at-risk`` rule covers, and
  those with an at-risk alert open. Only a few percent of a fleet is flagged, so this
  stays light on the loop; with no such rule and nothing open it costs nothing.

Restart safety: open alerts and outage incidents are reloaded into the core at start.
A checkpoint (``monitor_meta`` ``alerts_decided_until``) records up to when every
transition has been decided; at start, devices that went down after it and have no
open alert are judged again, so a monitor killed while a drop was held (or before its
alert was written) still alerts once. A clean stop releases everything held first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from device_client.backoff import Backoff
from device_client.protocol import Topics
from monitor.alerts import repository
from monitor.alerts.actions import AlertActions, AlertStats
from monitor.alerts.core import (
    AlertCore,
    AlertOptions,
    DeviceContext,
    DeviceState,
    GrowOutage,
    Intent,
    RiskEntry,
)
from monitor.alerts.followup import FollowUpView, due_followups
from monitor.alerts.levels import Severity
from monitor.alerts.models import Alert
from monitor.alerts.notifier import AppriseNotifier, Notifier
from monitor.alerts.outbox import Outbox
from monitor.alerts.retry import RetryPolicy
from monitor.alerts.routing import AT_RISK, Route, Rule, min_risk, route, route_at_risk
from monitor.alerts.schedule import Quiet
from monitor.cluster.errors import LeaseLost
from monitor.cluster.fencing import Fence
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.states import State, Transition
from monitor.ops import config_version
from monitor.settings import MonitorSettings
from monitor.store import repository as store_repository
from monitor.store.errors import StoreError, StoreUnavailable
from monitor.timefmt import from_datetime

CHECKPOINT_KEY: Final = "alerts_decided_until"
TICK_EVERY: Final = 0.2
CHECKPOINT_EVERY: Final = 2.0
TAGS_EVERY: Final = 60.0
MAX_QUEUED_INTENTS: Final = 100_000
MAX_QUEUED_EVENTS: Final = 10_000
_DOWN_STATES: Final = frozenset({State.STALE, State.OFFLINE, State.LOST, State.LATE})


def options_from(settings: MonitorSettings) -> AlertOptions:
    return AlertOptions(
        alert_on_shutdown=settings.alert_on_shutdown,
        alert_late=settings.alert_late,
        storm_share=settings.storm_share,
        storm_window=settings.storm_window,
        storm_min_devices=settings.storm_min_devices,
        flap_changes=settings.flap_changes,
        flap_window=settings.flap_window,
    )


class EventLink(Protocol):
    """Where alert events go out (the monitor's MQTT link): published only while
    connected, never coalesced (each event is news)."""

    @property
    def connected(self) -> bool: ...

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = ..., coalesce: bool = ...
    ) -> None: ...


class RiskView(Protocol):
    """One device's risk (``monitor.risk.scoring.DeviceRisk``)."""

    @property
    def level(self) -> str: ...

    @property
    def reasons(self) -> tuple[str, ...]: ...


class RiskReportView(Protocol):
    @property
    def scored_at(self) -> float: ...

    def at_risk(self) -> Sequence[tuple[str, RiskView]]: ...

    def get(self, device_id: str) -> RiskView | None: ...


class RiskSource(Protocol):
    """The risk scorer (``monitor.risk.scorer.RiskScorer``): its latest pass and a count."""

    @property
    def cycles(self) -> int: ...

    @property
    def report(self) -> RiskReportView: ...


class Alerting:
    """Alerting for one monitor process. Call :meth:`start`, run :meth:`run`, :meth:`close`."""

    def __init__(
        self,
        settings: MonitorSettings,
        sessions: async_sessionmaker[AsyncSession],
        topics: Topics,
        *,
        notifier: Notifier | None = None,
        logger: logging.Logger | None = None,
        fence: Callable[[], Fence] | None = None,
        acts_for: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        # Cluster mode: the devices this replica decides for (its partitions') now.
        self._acts_for = acts_for
        self._sessions = sessions
        self._topic = topics.alerts
        self._log = logger or logging.getLogger("clawbeat.alerts")
        self.core = AlertCore(options_from(settings))
        self.outbox = Outbox(
            sessions,
            notifier or AppriseNotifier(timeout=settings.alert_send_timeout),
            retry=RetryPolicy(
                settings.alert_retry_base,
                max(settings.alert_retry_cap, settings.alert_retry_base),
                settings.alert_max_attempts,
            ),
            send_timeout=settings.alert_send_timeout,
        )
        self.stats = AlertStats()
        self.actions = AlertActions(
            sessions,
            route=self._route,
            route_risk=self._route_risk,
            context=self._context,
            emit=self._emit,
            flap_window=settings.flap_window,
            stats=self.stats,
            logger=self._log,
            fence=fence,
        )
        self._engine: LivenessEngine | None = None
        self._link: EventLink | None = None
        self._risk: RiskSource | None = None
        self._risk_cycles = 0
        self._intents: deque[tuple[float, Intent]] = deque()
        self._events: deque[bytes] = deque()
        self._writer_wake = asyncio.Event()
        self._rules: list[Rule] = []
        self._channels: list[str] = []
        self._quiet = Quiet()
        self._in_effect: dict[str, str] = {}
        self._tags: dict[str, frozenset[str]] = {}
        self._config_version: str | None = None
        self._tags_loaded_at = 0.0
        self._db_ok = True
        self._closing = False
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(
        self, engine: LivenessEngine, link: EventLink | None, *, risk: RiskSource | None = None
    ) -> None:
        """Load configuration and open alerts; call once the engine holds its devices.

        ``risk``: the risk scorer whose passes ``at-risk`` rules alert on (None: off).
        """
        self._engine, self._link, self._risk = engine, link, risk
        if risk is not None:
            self._risk_cycles = risk.cycles
        await self._reload_config(force_tags=True)
        now, wall = time.monotonic(), time.time()
        async with self._sessions() as session:
            open_alerts = await repository.load_open_alerts(session)
            checkpoint = await store_repository.get_meta(session, key=CHECKPOINT_KEY)
        for alert in open_alerts:
            self._restore(alert, now)
        if risk is None:
            # Scoring is off (CLAWBEAT_RISK_CYCLE=0): at-risk alerts left open would never end.
            self._queue(self.core.drop_risk_alerts(wall=wall, note="risk scoring off"))
        # A10: a device still only late that was never heard is never-seen too (one
        # unknown is recognised by its next transition anyway).
        self.core.mark_never_seen(
            snap.device_id
            for snap in engine.snapshots()
            if snap.state is State.LATE and snap.last_seen_wall is None
        )
        self._reconcile(None if checkpoint is None else float(checkpoint), now, wall)
        self._started = True
        counts = self.core.counts()
        self._log.info(
            "alerting: %d open alerts, %d rules, %d channels",
            counts.open_alerts,
            len(self._rules),
            len(self._channels),
        )

    async def run(self) -> None:
        """The background task: every loop of the shell, until cancelled or closed."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._guarded("tick", self._tick_loop))
            group.create_task(self._guarded("writer", self._writer_loop))
            group.create_task(self._guarded("follow-ups", self._followup_loop))
            group.create_task(self._guarded("configuration", self._config_loop))
            group.create_task(self._guarded("outbox", self.outbox.run))

    async def _guarded(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a loop forever: a bug in alerting is logged, it never stops the monitor."""
        while not self._closing:
            try:
                await loop()
            except Exception:  # noqa: BLE001 - logged with its traceback, loop restarted
                self._log.exception("alerting: %s loop failed; restarting it", name)
                await asyncio.sleep(1.0)
            else:
                return

    async def close(self, within: float = 5.0) -> None:
        """Release held decisions, write what is queued, checkpoint, stop the outbox."""
        if self._closing or not self._started:
            return
        self._closing = True
        await self.outbox.close(within)
        engine = self._engine
        assert engine is not None
        self._queue(self.core.flush(now=time.monotonic(), wall=time.time(), fleet_size=len(engine)))
        deadline = time.monotonic() + within
        while self._intents and time.monotonic() < deadline:
            if not await self._write_pending():
                await asyncio.sleep(0.2)
        if self._intents:
            self._log.error("alerting stopped with %d decisions unwritten", len(self._intents))
            return
        with contextlib.suppress(StoreError):
            await self._checkpoint(time.time())
        self._flush_events()

    # ------------------------------------------------------------------ the hook

    def on_transition(self, tr: Transition, uid: object) -> None:
        """Judge one transition (called from the monitor's ``_apply``); never raises."""
        if not self._started or self._closing:
            return
        try:
            intents = self.core.transition(
                tr,
                context=self._context(tr.device_id),
                key=f"{tr.device_id}:{uid}",
                now=time.monotonic(),
                wall=time.time(),
            )
        except Exception:  # noqa: BLE001 - a bug here must not stop liveness
            self._log.exception("alerting: transition of %s not judged", tr.device_id)
            return
        self._queue(intents)

    async def load_open_alerts(self) -> list[Alert]:
        """Open alerts as stored, for :meth:`adopt`."""
        async with self._sessions() as session:
            return list(await repository.load_open_alerts(session))

    def adopt(
        self, device_ids: Collection[str], open_alerts: Iterable[Alert], *, undecided_since: float
    ) -> None:
        """Cluster mode: this replica now decides for ``device_ids`` (a partition taken
        over).

        Their open alerts (``open_alerts``, as :meth:`load_open_alerts` read them),
        opened by the replica that held the partition, become this core's, so a recovery
        resolves them and nothing is opened twice. Devices down since
        ``undecided_since`` (UTC seconds) without an open alert are judged again: the
        previous owner may have stopped while it held the drop (the storm window).
        """
        if not device_ids or not self._started:
            return
        wanted = set(device_ids)
        now, wall = time.monotonic(), time.time()
        in_outage: set[str] = set()  # told as part of an incident: not judged again
        for alert in open_alerts:
            device_id = alert.device_id
            if alert.kind == "outage":
                in_outage.update(str(d) for d in (alert.details or {}).get("devices", []))
                continue
            if device_id is None or device_id not in wanted:
                continue
            if not self.core.has_open_alert(device_id):
                self._restore(alert, now)
        engine = self._engine
        assert engine is not None
        for snap in engine.down_since(wanted, _DOWN_STATES, undecided_since):
            device_id = snap.device_id
            if self.core.has_open_alert(device_id) or device_id in in_outage:
                continue
            assert snap.reason is not None  # down_since returns only devices with one
            old = State.UNKNOWN if snap.last_seen_wall is None else State.ONLINE
            tr = Transition(device_id, old, snap.state, snap.reason, snap.since_wall, snap.session)
            self._queue(
                self.core.transition(
                    tr,
                    context=self._context(device_id),
                    key=f"{device_id}:reconciled:{snap.since_wall:.3f}",
                    now=now,
                    wall=wall,
                )
            )

    def release(self, device_ids: Iterable[str]) -> None:
        """Cluster mode: another replica decides for ``device_ids`` now."""
        for device_id in device_ids:
            self.core.forget(device_id)

    def forget_device(self, device_id: str) -> None:
        """Ops deleted the device (``monitor.ops.forget``): drop what the core holds."""
        self.core.forget(device_id)

    @property
    def settled(self) -> bool:
        """False while the engine warms up or is blind: nothing fires then."""
        engine = self._engine
        return engine is not None and not engine.warming_up and engine.blind_since is None

    # ------------------------------------------------------------------ loops

    async def _tick_loop(self) -> None:
        last_checkpoint = 0.0
        while True:
            await asyncio.sleep(TICK_EVERY)
            engine = self._engine
            assert engine is not None
            now = time.monotonic()
            self._queue(
                self.core.tick(
                    now=now, wall=time.time(), fleet_size=len(engine), settled=self.settled
                )
            )
            self._risk_pass()
            self._flush_events()
            if self.settled and now - last_checkpoint >= CHECKPOINT_EVERY:
                last_checkpoint = now
                try:
                    await self._checkpoint(self._decided_until())
                except StoreError as exc:
                    self._log.debug("alert checkpoint not written: %s", exc)

    async def _writer_loop(self) -> None:
        # While the database is away: retried as the write-behind does, 0.5 s doubling to 15 s.
        backoff = Backoff(base=0.5, cap=15.0, rng=random.Random(), spread=0.2)
        while True:
            if not self._intents:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._writer_wake.wait()
                self._writer_wake.clear()
                continue
            if await self._write_pending():
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())

    async def _followup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alert_poll_interval)
            if not self.settled:
                continue
            try:
                await self._followups(datetime.now(UTC))
            except StoreError as exc:
                self._log.debug("alert follow-ups skipped: %s", exc)

    async def _config_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alert_poll_interval)
            try:
                await self._reload_config(force_tags=False)
            except StoreError as exc:
                self._log.debug("alert configuration not reloaded: %s", exc)

    def _risk_pass(self) -> None:
        """A11: judge the risk scorer's latest pass, once, if there is a new one."""
        risk = self._risk
        if risk is None or risk.cycles == self._risk_cycles:
            return
        self._risk_cycles = risk.cycles
        open_now = self.core.risk_alerts()
        if not self.settled or (
            not open_now and not any(rule.kind == AT_RISK for rule in self._rules)
        ):
            return
        engine = self._engine
        assert engine is not None
        report = risk.report
        entries: list[RiskEntry] = []
        judged: set[str] = set()

        acts_for = self._acts_for

        def entry(dev: str, level: str, reasons: tuple[str, ...]) -> RiskEntry | None:
            if acts_for is not None and not acts_for(dev):
                return None  # another replica's partition: it alerts for the device
            snap = engine.snapshot(dev)
            if snap is None:
                return None
            context = self._context(dev)
            lowest = min_risk(self._rules, device_class=context.device_class, tags=context.tags)
            if lowest is None and not self.core.has_risk_alert(dev):
                return None
            device = DeviceState(dev, snap.state.value, None, report.scored_at, context)
            return RiskEntry(device, level, reasons, lowest, up=snap.state is State.ONLINE)

        for dev, scored in report.at_risk():
            judged.add(dev)
            found = entry(dev, str(scored.level), tuple(scored.reasons))
            if found is not None:
                entries.append(found)
        for dev in open_now:
            if dev not in judged:
                found = entry(dev, "low", ())
                if found is not None:
                    entries.append(found)
        self._queue(self.core.risk_pass(entries, wall=report.scored_at))

    # ------------------------------------------------------------------ configuration

    async def _reload_config(self, *, force_tags: bool) -> None:
        now = datetime.now(UTC)
        async with self._sessions() as session:
            self._rules = await repository.load_rules(session)
            self._channels = await repository.channel_names(session)
            self._quiet = await repository.load_quiet(session, now=now)
            version = await config_version.read(session)
            mono = time.monotonic()
            if (
                force_tags
                or version != self._config_version
                or mono - self._tags_loaded_at >= TAGS_EVERY
            ):
                self._tags = await store_repository.device_tags(session)
                self._config_version = version
                self._tags_loaded_at = mono
        self.core.set_quiet(self._quiet)
        self._log_quiet_changes(now)

    def _log_quiet_changes(self, now: datetime) -> None:
        """Say when a window or mute starts or stops silencing devices, once each."""
        active = self._quiet.in_effect(now)
        for label in sorted(active.keys() - self._in_effect.keys()):
            self._log.info("alerting: %s in effect: %s", label, active[label])
        for label in sorted(self._in_effect.keys() - active.keys()):
            self._log.info("alerting: %s no longer in effect", label)
        self._in_effect = active

    def _context(self, device_id: str) -> DeviceContext:
        engine = self._engine
        snap = engine.snapshot(device_id) if engine is not None else None
        return DeviceContext(
            snap.device_class if snap is not None else "default",
            self._tags.get(device_id, frozenset()),
        )

    def _route(self, context: DeviceContext, severity: Severity) -> Route:
        return route(
            self._rules,
            self._channels,
            device_class=context.device_class,
            tags=context.tags,
            severity=severity,
        )

    def _route_risk(self, context: DeviceContext, level: str) -> Route:
        return route_at_risk(
            self._rules,
            self._channels,
            device_class=context.device_class,
            tags=context.tags,
            level=level,
        )

    # ------------------------------------------------------------------ start-up

    def _restore(self, alert: Alert, now: float) -> None:
        engine = self._engine
        assert engine is not None
        opened = from_datetime(alert.opened_at) or 0.0
        details = alert.details or {}
        if alert.kind == "device" and alert.device_id is not None:
            snap = engine.snapshot(alert.device_id)
            up = snap is not None and snap.state is State.ONLINE
            device = DeviceState(
                alert.device_id,
                snap.state.value if up and snap is not None else alert.state,
                alert.reason,
                float(details.get("down_since", opened)),
                self._context(alert.device_id),
            )
            self.core.load_open_alert(
                device, severity=Severity(alert.severity), flapping=alert.flapping, up=up, now=now
            )
        elif alert.kind == AT_RISK and alert.device_id is not None:
            self.core.load_risk_alert(alert.device_id)
        elif alert.kind == "outage" and alert.open_key is not None:
            members = [
                DeviceState(str(dev), "offline", None, opened, self._context(str(dev)))
                for dev in details.get("devices", [])
            ]
            recovered = []
            for member in members:
                snap = engine.snapshot(member.device_id)
                if snap is None or snap.state is State.ONLINE:
                    recovered.append(member.device_id)
            self.core.load_outage(
                alert.open_key,
                members,
                recovered=recovered,
                first_wall=float(details.get("first", opened)),
                now=now,
            )

    def _reconcile(self, checkpoint: float | None, now: float, wall: float) -> None:
        """Devices down without an alert that a previous monitor left undecided.

        Those down since the checkpoint (the previous monitor may not have decided
        them), and those that went down inside a maintenance window or mute still in
        effect (the previous monitor would have alerted them when it ended, A9): both
        are judged again, the second kind is remembered until the silence ends.
        """
        engine = self._engine
        assert engine is not None
        found = silenced = 0
        for snap in engine.snapshots():
            if (
                snap.state not in _DOWN_STATES
                or snap.reason is None
                or self.core.has_open_alert(snap.device_id)
            ):
                continue
            if checkpoint is None or snap.since_wall <= checkpoint:
                if not self._silenced_since(snap.device_id, snap.since_wall, wall):
                    continue
                silenced += 1
            else:
                found += 1
            # Never heard (A10: only retained messages): judged as such again.
            old = State.UNKNOWN if snap.last_seen_wall is None else State.ONLINE
            tr = Transition(
                snap.device_id, old, snap.state, snap.reason, snap.since_wall, snap.session
            )
            self._queue(
                self.core.transition(
                    tr,
                    context=self._context(snap.device_id),
                    key=f"{snap.device_id}:reconciled:{snap.since_wall:.3f}",
                    now=now,
                    wall=wall,
                )
            )
        if found:
            self._log.info("alerting: %d devices went down undecided before the restart", found)
        if silenced:
            self._log.info(
                "alerting: %d devices went down inside a maintenance window or mute still "
                "in effect: alerted when it ends, if still down",
                silenced,
            )

    def _silenced_since(self, device_id: str, since: float, wall: float) -> bool:
        """Silenced both when the device went down and now."""
        context = self._context(device_id)
        quiet = self._quiet
        return all(
            quiet.silenced_by(
                device_id, context.device_class, context.tags, datetime.fromtimestamp(at, UTC)
            )
            is not None
            for at in (since, wall)
        )

    # ------------------------------------------------------------------ checkpoint

    def _decided_until(self) -> float:
        # A transition can be stamped earlier than it is received (a held will: by
        # will_hold; a deadline: by one tick), so the checkpoint stays that far behind.
        margin = self.settings.will_hold + 5.0
        candidates = [time.time() - margin]
        undecided = self.core.undecided_since()
        if undecided is not None:
            candidates.append(undecided)
        if self._intents:
            candidates.append(self._intents[0][0] - margin)
        return min(candidates)

    async def _checkpoint(self, until: float) -> None:
        async with self._sessions() as session:
            await store_repository.set_meta(
                session, key=CHECKPOINT_KEY, value=f"{until:.3f}", now=datetime.now(UTC)
            )
            await session.commit()

    # ------------------------------------------------------------------ intents

    def _queue(self, intents: Sequence[Intent]) -> None:
        if not intents:
            return
        wall = time.time()
        for intent in intents:
            if len(self._intents) >= MAX_QUEUED_INTENTS:
                self._intents.popleft()
                self.stats.intents_dropped += 1
                if self.stats.intents_dropped == 1 or self.stats.intents_dropped % 1000 == 0:
                    self._log.error(
                        "alerting: %d decisions dropped (database unavailable too long)",
                        self.stats.intents_dropped,
                    )
            self._intents.append((wall, intent))
            self.stats.intents += 1
        self._writer_wake.set()

    async def _write_pending(self) -> bool:
        """Carry out queued intents in order; False when the database failed."""
        while self._intents:
            intent = self._intents[0][1]
            merged = 1
            if isinstance(intent, GrowOutage):
                # Coalesce a burst of drops joining one incident into one update.
                devices = list(intent.devices)
                while merged < len(self._intents):
                    following = self._intents[merged][1]
                    if not isinstance(following, GrowOutage) or following.key != intent.key:
                        break
                    devices.extend(following.devices)
                    merged += 1
                intent = GrowOutage(intent.key, tuple(devices))
            queued = self.stats.notifications_queued
            try:
                await self.actions.execute(intent)
            except StoreUnavailable as exc:
                if self._db_ok:
                    self._db_ok = False
                    self._log.warning("alerting: database unavailable (%s); retrying", exc)
                return False
            except LeaseLost as exc:
                # The partition moved on: its new owner decides for the device now.
                self.stats.fenced += 1
                self._log.info("alerting: decision %s not ours: %s", type(intent).__name__, exc)
            except StoreError as exc:
                self._log.error("alerting: decision %s dropped: %s", type(intent).__name__, exc)
            if not self._db_ok:
                self._db_ok = True
                self._log.info("alerting: database reachable again")
            for _ in range(merged):
                self._intents.popleft()
            if self.stats.notifications_queued != queued:
                self.outbox.wake()  # after the commit, so the worker sees the rows
        self._flush_events()
        return True

    # ------------------------------------------------------------------ follow-ups

    async def _followups(self, now: datetime) -> None:
        settings = self.settings
        if settings.repeat_every <= 0 and settings.escalate_after <= 0:
            return
        async with self._sessions() as session:
            candidates = await repository.followup_candidates(
                session,
                now=now,
                repeat_every=settings.repeat_every,
                escalate_after=settings.escalate_after,
            )
        for alert in candidates:
            silenced = False
            if alert.kind == "device" and alert.device_id is not None:
                context = self._context(alert.device_id)
                silenced = (
                    self._quiet.silenced_by(
                        alert.device_id, context.device_class, context.tags, now
                    )
                    is not None
                )
            view = FollowUpView(
                alert_id=alert.id,
                severity=Severity(alert.severity),
                opened_at=alert.opened_at,
                last_notified_at=alert.last_notified_at,
                repeats=alert.repeats,
                escalated=alert.escalated_at is not None,
                has_escalation=bool(alert.escalate_to),
                acknowledged=alert.acknowledged_at is not None,
                flapping=alert.flapping,
                snoozed_until=alert.snoozed_until,
                silenced=silenced,
            )
            due = due_followups(
                view,
                now,
                repeat_every=settings.repeat_every,
                escalate_after=settings.escalate_after,
            )
            for followup in due:
                if await self.actions.followup(alert, followup.kind, followup.number, now):
                    self.outbox.wake()

    # ------------------------------------------------------------------ output

    def _emit(self, payload: bytes) -> None:
        if len(self._events) >= MAX_QUEUED_EVENTS:
            self._events.popleft()
            self.stats.events_dropped += 1
        self._events.append(payload)
        self._flush_events()

    def _flush_events(self) -> None:
        link = self._link
        if link is None or not link.connected:
            return
        while self._events:
            link.publish(self._topic, self._events.popleft(), retain=False, coalesce=False)
            self.stats.events_published += 1

"""The monitor process: the thin shell around the pure liveness engine.

It feeds the engine events (MQTT messages, clock ticks, broker up/down) and carries out
what comes back: transitions go to the write-behind store (committed promptly) and to
retained status topics; device fields go to the store at most once per flush window.

Clocks: ``time.monotonic()`` for every deadline, ``time.time()`` (UTC) for what is stored
and shown. A device's own timestamp is only a latency/skew figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Final, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from device_client.protocol import (
    ConfigUpdate,
    Heartbeat,
    OfflineReason,
    Presence,
    Topics,
    encode_config,
)
from monitor.alerts.shell import Alerting
from monitor.cluster import leases as lease_store
from monitor.cluster import partition_topics
from monitor.cluster.keeper import KeeperTiming, LeaseKeeper
from monitor.cluster.leases import replica_identity
from monitor.cluster.partitions import partition_of, partition_spans
from monitor.homeassistant.publisher import Discovery
from monitor.ingest import Ingest
from monitor.live_events import EventHub, transition_event
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.outcomes import Cadence, EventResult, Outcome, StatusView
from monitor.liveness.snapshot import DeviceSnapshot
from monitor.liveness.states import State, Transition
from monitor.metrics import ServiceMetrics
from monitor.mqtt_link import LinkOptions, MqttLink, Outgoing
from monitor.ops.config_version import CONFIG_VERSION_KEY
from monitor.ops.sources import StoredSource, load_stored
from monitor.parts import MonitorParts
from monitor.risk.scorer import RiskOptions, RiskScorer
from monitor.settings import MonitorSettings
from monitor.sight import Sight, SightChange, probe_timing
from monitor.sources.base import Adapter
from monitor.sources.config import SourceConfigError
from monitor.sources.ingest import SourceIngest, route
from monitor.sources.primary_host import PrimaryHost, host_options
from monitor.sources.resolve import engine_view
from monitor.sources.sparkplug import SparkplugAdapter
from monitor.state_rows import (
    device_row,
    rollup_minute,
    transition_row,
)
from monitor.status_refresh import last_seen_due, refresh_period
from monitor.store import repository
from monitor.store.device_stream import stream_devices
from monitor.store.errors import StoreError
from monitor.store.models import DeviceClass
from monitor.store.rows import StoredDevice
from monitor.store.writer import WriteBehind
from monitor.topic_payloads import monitor_presence_payload, status_payload, summary_payload
from monitor.transition_log import TransitionLog

log = logging.getLogger("clawbeat.monitor")


def _host_ids(adapters: list[Adapter]) -> set[str]:
    return {
        a.primary_host_id
        for a in adapters
        if isinstance(a, SparkplugAdapter) and a.primary_host_id is not None
    }


_V = TypeVar("_V")
# Device deadlines one tick judges at most. Each transition costs tens of microseconds to
# carry out, so a batch of this size holds the event loop for well under 100 ms, and the
# earliest deadlines of a mass outage are told first instead of after the whole outage.
TICK_BATCH: Final = 1_000
# The service's counter of transitions into each state.
_COUNTED: Final = {state: f"transition_{state.value}" for state in State}


# A retained message of a forgotten device, cleared on the broker (monitor.ops.forget).
_CLEARED = EventResult(Outcome.RETAINED_CLAIM)
_NOT_HELD = EventResult(Outcome.NOT_HELD)


def default_replica_name() -> str:
    """Host name and process id: unique on a host, readable in ``clawbeat cluster status``."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "monitor"
    return f"{host}-{os.getpid()}"


class Face(Protocol):
    """What the service runs for a face built on top of it (the HTTP server): bound once
    the state is loaded, so a bad setting fails the start; served until cancelled."""

    name: str

    def bind(self) -> None: ...

    async def serve(self) -> None: ...


class MonitorService:
    def __init__(
        self, settings: MonitorSettings, parts: MonitorParts, *, instance: str | None = None
    ) -> None:
        """Build the service from ``parts`` (:func:`monitor.parts.open_monitor`); nothing
        here waits or fails on the broker or the database."""
        self.settings = settings
        self.topics = Topics(settings.topic_root)
        # Several URLs, comma-separated, are the nodes of one broker cluster.
        address, self.fallbacks = parts.addresses[0], parts.addresses[1:]
        self.address = address
        self.instance = instance or settings.mqtt_client_id or address.username or "monitor"
        self.engine: LivenessEngine = parts.engine
        self.db = parts.db
        self.sessions = parts.sessions
        self.events = EventHub()  # live transitions and summaries for dashboards
        # At-risk scoring (monitor/risk): signals recorded here, scored in a thread.
        self.risk = RiskScorer(
            RiskOptions(
                cycle=settings.risk_cycle or 60.0,
                retrain_every=settings.risk_retrain,
                min_outages=settings.risk_min_outages,
            )
        )
        # Cluster mode (docs/cluster.md): this replica's partition leases; None alone.
        self.replica = settings.replica or default_replica_name()
        self.keeper: LeaseKeeper | None = None
        if settings.cluster:
            self.keeper = LeaseKeeper(
                self.sessions,
                owner=replica_identity(self.replica),
                partitions=settings.partitions,
                timing=KeeperTiming(
                    ttl=settings.lease_ttl,
                    renew_every=settings.lease_renew_every,
                    margin=settings.lease_margin,
                ),
                before_release=self._hand_off,
                lag=self._write_lag,
            )
        # Partitions held and taken over (the world caught up with the engine): acted for.
        self._caught_up: set[int] = set()
        self._partition_of: dict[str, int] = {}
        self._replica_lock = parts.replica_lock
        # A cluster replica on a broker that routes by partition (NATS): it subscribes
        # to, and keeps in its engine, only the partitions it holds (no hot standby).
        self._routed = self.keeper is not None and settings.partition_topics
        self._subscription_change = False  # partitions let go: unsubscribe at the next step
        # Alone: the monitor's presence. A cluster replica: its own, beside the others'.
        self.presence_topic = (
            self.topics.monitor_presence
            if self.keeper is None
            else self.topics.replica_presence(self.replica)
        )
        # Cluster mode: devices per state of the whole fleet, as the database has it,
        # re-read every summary interval (the engine may hold only its own partitions).
        self._fleet_counts: dict[State, int] | None = None
        self.metrics = ServiceMetrics(self)  # this instance's own Prometheus registry
        self.writer = WriteBehind(
            self.sessions,
            flush_interval=settings.flush_interval,
            rollup_interval=settings.rollup_interval,
            on_flush=self.metrics.on_flush,
            fence=None if self.keeper is None else self.keeper.fence,
        )
        # Fleets in other conventions (monitor/sources); a bad file fails the start here.
        self.file_adapters = parts.file_adapters
        self._stored: dict[str, StoredSource] = parts.stored_sources
        # The file's sources, then the stored ones.
        self.source_adapters = [*self.file_adapters, *(s.adapter for s in self._stored.values())]
        self._sources_lock = asyncio.Lock()
        self.alerting = Alerting(  # monitor/alerts
            settings,
            self.sessions,
            self.topics,
            fence=None if self.keeper is None else self.keeper.fence,
            acts_for=None if self.keeper is None else self.acts_for,
        )
        self.counts: Counter[str] = Counter()
        self.transition_log = TransitionLog(log)
        # When each device registered since the last flush was first seen (its first
        # transition), so its new row says that rather than when it was flushed.
        self._first_seen: dict[str, float] = {}
        self._minute_key = -1
        self._minute_value = rollup_minute(0.0)
        self._stop = asyncio.Event()
        self._started_wall = time.time()
        self._warmed_up = False
        # Ops changes in the database as engine commands; retained config topics.
        self.config = parts.config
        self.forgotten = parts.forgotten  # clawbeat devices forget
        self.homeassistant = Discovery(settings, self.topics, self.sessions)  # HA discovery
        self._to_purge: set[str] = set()
        # Seconds between last_seen refreshes of a beating device's status (the flush
        # loop follows the fleet's size).
        self._status_period = settings.status_refresh
        self._probe_seq = 0
        self._seen = False  # sight has returned at least once (the first connection)
        # Per process: a probe of an earlier process (its resumed session) is not ours.
        self._probe_topic = f"{settings.topic_root}/monitor/probe/{secrets.token_hex(6)}"
        self.ingest = Ingest(
            self.topics,
            self,
            logging.getLogger("clawbeat.ingest"),
            config=self.config_message,
            other=self.probe_echo,
            partitions=self.settings.partitions if self.settings.partition_topics else None,
        )
        host = host_options(self.source_adapters, self.settings, client_id=self.instance)
        self.sparkplug_host = PrimaryHost(host) if host is not None else None
        # Built even without sources: one stored while the monitor runs joins it live.
        self.sources = SourceIngest(
            self.source_adapters,
            self,
            engine_view(self.engine),
            logging.getLogger("clawbeat.sources"),
            publish=self._send_command,
        )
        # Config topics too: the retained ones are reconciled with the database.
        self._subscriptions: tuple[str, ...] = (
            self.topics.heartbeat_filter,
            self.topics.presence_filter,
            self.topics.config_filter,
        )
        if self.settings.partition_topics:
            # The broker routes heartbeat and presence by partition; alone, this replica
            # acts for them all (config topics are not remapped). A cluster replica
            # subscribes to each partition as it takes it over (_subscribe_held).
            count = self.settings.partitions
            held = () if self._routed else range(count)
            self._subscriptions = (
                *(partition_topics.filters(self.topics, held, of=count) if held else ()),
                self.topics.config_filter,
            )
        # The will is fixed now, for every connection: it cannot say when it will fire.
        will = self._presence("offline", since=None, reason=OfflineReason.CONNECTION_LOST)
        self.link = MqttLink(
            LinkOptions(
                address=self.address,
                client_id=self.settings.mqtt_client_id or self.address.username or "monitor",
                keepalive=self.settings.mqtt_keepalive,
                subscriptions=(*self._subscriptions, *self.sources.filters),
                will_topic=self.presence_topic,
                will_payload=will,
                ca_file=str(self.settings.mqtt_ca_file) if self.settings.mqtt_ca_file else None,
                cert_file=str(self.settings.mqtt_cert_file)
                if self.settings.mqtt_cert_file
                else None,
                key_file=str(self.settings.mqtt_key_file) if self.settings.mqtt_key_file else None,
                report_every=self.settings.mqtt_report_every,
                session_expiry=self.settings.mqtt_session_expiry,
                probe_topic=self._probe_topic,
                protocol=self.settings.mqtt_protocol,
                fallbacks=self.fallbacks,
            ),
            on_message=self.ingest.handle,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
        )
        # Protocol v1 straight from the link while there are no sources, a router once
        # one is stored (re-pointed as they come and go).
        route(self.ingest.handle, self.sources, self.topics.root, self.link.deliver_to)
        timeout, every = self._probe_timing()
        self.sight = Sight(timeout=timeout, every=every, now=time.monotonic(), wall=time.time())

    def acts_for(self, device_id: str) -> bool:
        """Whether this replica's engine is the live truth for ``device_id`` now.

        Alone, always. In cluster mode only while it holds the device's partition: for
        the rest of the fleet the database, which the owners write, is what the API and
        dashboard show, so every replica shows the same fleet.
        """
        keeper = self.keeper
        if keeper is None:
            return True
        partition = self.partition(device_id)
        return partition in self._caught_up and keeper.acting(partition)

    def _write_lag(self) -> float | None:
        return self.writer.lag_seconds

    def partition(self, device_id: str) -> int:
        """``device_id``'s partition (memoised: the hash is Python, asked per event)."""
        partition = self._partition_of.get(device_id)
        if partition is None:
            partition = partition_of(device_id, self.settings.partitions)
            self._partition_of[device_id] = partition
        return partition

    def _holds(self, device_id: str) -> bool:
        """Writes for ``device_id`` may land: its partition's lease is held (being handed
        off included, so the flush before the release writes what was queued)."""
        keeper = self.keeper
        return keeper is None or self.partition(device_id) in keeper.leases

    def live_snapshot(self, device_id: str) -> DeviceSnapshot | None:
        """The engine's view of ``device_id`` where it is the live truth (:meth:`acts_for`)."""
        engine = self.engine
        if not self.acts_for(device_id):
            return None
        return engine.snapshot(device_id)

    def fleet_counts(self) -> dict[State, int]:
        """Devices per state of the whole fleet: the engine's alone, the database's in
        cluster mode (as of the last summary interval), whichever replica asks."""
        if self.keeper is not None and self._fleet_counts is not None:
            return dict(self._fleet_counts)
        return self.engine.counts()

    async def _read_fleet_counts(self) -> None:
        try:
            async with self.sessions() as session:
                stored = await repository.count_devices_by_state(session)
        except StoreError as exc:
            # Kept as they were: the next interval tries again.
            log.debug("fleet counts: %s", exc)
            return
        known = {s.value for s in State}
        self._fleet_counts = {State(k): n for k, n in stored.items() if k in known}

    # ------------------------------------------------------------ ingest sink

    def heartbeat(
        self, device_id: str, hb: Heartbeat, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        if self._routed and self.partition(device_id) not in self._caught_up:
            return _NOT_HELD
        if device_id in self.forgotten and self._forgotten_message(
            device_id, self.topics.heartbeat(device_id), retained=retained
        ):
            return _CLEARED
        sight = self.sight
        if sight.overdue(now):
            # Woken from a stall with heartbeats queued: blind before the first is read.
            self._sight_changed(sight.check(now, wall), now)
        result = self.engine.heartbeat(device_id, hb, now, wall, retained=retained)
        before = result.before
        if result.outcome in (Outcome.ACCEPTED, Outcome.RECONNECTED):
            latency_ms = None if result.latency is None else result.latency * 1000.0
            # Inter-arrival figures only between beats of one session this process heard
            # with no blind period between (the engine says): any other gap is an
            # outage, already told by transitions (R18).
            jitter_ms = None
            gap = result.gap
            if gap is not None and before is not None and before[2]:
                jitter_ms = abs(gap - before[2]) * 1000.0
            if self._holds(device_id):
                self.writer.add_rollup(
                    device_id,
                    self._minute(wall),
                    count=1,
                    missed=result.missed,
                    latency_ms=latency_ms,
                    jitter_ms=jitter_ms,
                )
            if before is not None and not result.transitions:
                self._refresh_status(device_id, before, hb, wall)
            if self.settings.risk_cycle > 0:
                self._observe_risk(device_id, hb, result, before, now)
        self._apply(result.transitions)
        return result

    def _observe_risk(
        self,
        device_id: str,
        hb: Heartbeat,
        result: EventResult,
        before: Cadence | None,
        now: float,
    ) -> None:
        device_class = None
        if result.outcome is Outcome.RECONNECTED or not self.risk.knows(device_id):
            # The class only on first sight and reconnects: a snapshot per beat costs.
            snap = self.engine.snapshot(device_id)
            device_class = snap.device_class if snap is not None else None
        self.risk.heartbeat(
            device_id,
            hb,
            now,
            interval=before[2] if before is not None and before[2] else hb.interval,
            latency=result.latency,
            device_class=device_class,
        )

    def _refresh_status(
        self,
        device_id: str,
        before: Cadence,
        hb: Heartbeat,
        wall: float,
    ) -> None:
        """Republish a status this heartbeat made untrue (see ``status_refresh.py``).

        ``before`` is the device's (session, last_seen, interval) before the heartbeat.
        Cheap on purpose, on every heartbeat without a transition: the interval is only
        looked up again when the announced one differs from what was in force.
        """
        session, last_seen, interval = before
        if (
            last_seen is not None
            and session == hb.session
            and (hb.interval == interval or self._effective_interval(device_id) == interval)
            and not last_seen_due(device_id, last_seen, wall, self._status_period)
        ):
            return
        snap = self.engine.snapshot(device_id)
        if snap is not None:
            self._publish_status(snap)

    def _effective_interval(self, device_id: str) -> float | None:
        cadence = self.engine.cadence(device_id)
        return None if cadence is None else cadence[2]

    def _minute(self, wall: float) -> datetime:
        # One datetime per minute instead of one per heartbeat.
        key = int(wall // 60)
        if key != self._minute_key:
            self._minute_key, self._minute_value = key, rollup_minute(wall)
        return self._minute_value

    def presence(
        self, device_id: str, presence: Presence, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        if self._routed and self.partition(device_id) not in self._caught_up:
            return _NOT_HELD
        if device_id in self.forgotten and self._forgotten_message(
            device_id, self.topics.presence(device_id), retained=retained
        ):
            return _CLEARED
        result = self.engine.presence(device_id, presence, now, wall, retained=retained)
        if result.outcome is Outcome.RECONNECTED and not result.transitions:
            # A new session of a device already online: its status names the old one.
            snap = self.engine.snapshot(device_id)
            if snap is not None:
                self._publish_status(snap)
        self._apply(result.transitions)
        return result

    def _forgotten_message(self, device_id: str, topic: str, *, retained: bool) -> bool:
        """A message of a forgotten device: True when it was cleared, not to be judged."""
        if retained:
            self._clear_retained((topic,))
            return True
        log.info("forgotten device %s is alive again: tracked as a new device", device_id)
        self.forgotten.revived(device_id)
        return False

    def _clear_retained(self, topics: Iterable[str]) -> None:
        for topic in topics:
            # A zero-length retained publish deletes what the broker retains.
            self.link.publish(topic, b"")
            self.forgotten.cleared += 1

    def _forget(self, device_ids: Iterable[str]) -> None:
        """Devices ops just forgot: stop tracking them and clear their retained topics."""
        for device_id in device_ids:
            self.engine.forget(device_id)
            self.risk.forget(device_id)
            self.alerting.forget_device(device_id)
            self.writer.forget(device_id)
            self.config.forget(device_id)
            self._first_seen.pop(device_id, None)
            self.homeassistant.forget(device_id)  # first: HA drops it before its status
            self._clear_retained(self.forgotten.retained_topics(device_id))
            self._to_purge.add(device_id)
            log.info("forgot device %s: its retained topics are cleared", device_id)

    async def _purge_forgotten(self) -> None:
        """A pass after forgetting: delete what a flush under way then wrote back."""
        ids, self._to_purge = self._to_purge, set()
        if not ids:
            return
        try:
            async with self.sessions() as session:
                await repository.purge_forgotten(session, device_ids=ids)
                await session.commit()
        except StoreError:
            self._to_purge.update(ids)

    async def _remove_revived(self) -> None:
        revived = self.forgotten.take_revived()
        if not revived:
            return
        try:
            async with self.sessions() as session:
                await repository.remove_forgotten(session, device_ids=revived)
                await session.commit()
        except StoreError:
            self.forgotten.keep(revived)

    # ------------------------------------------------------------ transitions

    def _apply(self, transitions: tuple[Transition, ...] | list[Transition]) -> None:
        """Carry out transitions: risk, the row, alerting, the status topic, live events.

        Per transition, so a mass outage (a tick's batch of thousands) pays each step
        thousands of times: bound methods looked up once, the status topic built from
        the engine's status view rather than a full snapshot.
        """
        if not transitions:
            return
        engine = self.engine
        mono = time.monotonic()
        risk = self.risk.transition
        counts = self.counts
        first_seen = self._first_seen
        put = self.writer.put_transition
        alert = self.alerting.on_transition
        events = self.events
        keeper = self.keeper
        if keeper is not None:
            for tr in transitions:
                risk(tr, mono)
            # Hot standby: the engine judges the whole fleet; only the partitions this
            # replica acts for are written, published and alerted (docs/cluster.md).
            transitions = [tr for tr in transitions if self.acts_for(tr.device_id)]
            if not transitions:
                return
        for tr in transitions:
            device_id = tr.device_id
            if keeper is None:
                risk(tr, mono)
            counts[_COUNTED[tr.new]] += 1
            if tr.old is None:
                first_seen[device_id] = tr.at_wall
            row = transition_row(tr)
            put(row)
            alert(tr, row.uid)
            if events.subscribers:
                snap = engine.snapshot(device_id)
                if snap is not None:
                    self._publish_status(snap)
                events.publish("transition", transition_event(tr, snap))
                continue
            view = engine.status_view(device_id)
            if view is not None:
                self._publish_view(device_id, view)
        self.transition_log.log(transitions, time.monotonic())

    def _publish_status(self, snap: DeviceSnapshot) -> None:
        # Every snapshot published is the engine's, which always says the interval it
        # judges by (only a snapshot restored from the database has none).
        interval = snap.effective_interval
        assert interval is not None
        self._publish_view(
            snap.device_id,
            (
                snap.state,
                snap.since_wall,
                snap.last_seen_wall,
                snap.reason,
                snap.session,
                interval,
                snap.device_class,
            ),
        )

    def _publish_view(self, device_id: str, view: StatusView) -> None:
        if not self.acts_for(device_id):
            return
        state, since, last_seen, reason, session, interval, device_class = view
        self.link.publish(
            self.topics.status(device_id),
            status_payload(
                device_id=device_id,
                state=state.value,
                since=since,
                last_seen=last_seen,
                reason=reason.value if reason else None,
                session=session,
                interval=interval,
                device_class=device_class,
            ),
        )

    # ------------------------------------------------------------ loops

    async def _tick_loop(self) -> None:
        sight = self.sight
        # Probes unanswered this long on a live connection, and never one answered:
        # the broker drops them (an ACL letting the monitor subscribe but not publish).
        patience = max(60.0, 6.0 * self.settings.mqtt_keepalive)
        backlog = False
        while True:
            # A limited tick that left deadlines due goes on at once, after one turn of
            # the event loop: a mass outage is judged batch by batch, each batch handed
            # on (rows, alerts, status topics) before the next, and messages are read
            # between them.
            await asyncio.sleep(0 if backlog else self.settings.tick_interval)
            now, wall = time.monotonic(), time.time()
            # Before any deadline is judged: a stall of the monitor itself, or a link
            # that stopped answering, makes it blind first (monitor/sight.py).
            self._sight_changed(sight.check(now, wall), now)
            if sight.never_answered(now, patience):
                log.error(
                    "the link probe on %s was never answered in %.0f s: a cut link is "
                    "noticed by keepalive only; let the monitor's user publish there",
                    self._probe_topic,
                    patience,
                )
                self._sight_changed(sight.give_up_probing(now), now)
            if sight.probe_due(now):
                self._send_probe(now)
            transitions = self.engine.tick(now, wall, limit=TICK_BATCH)
            if transitions:
                # Tick transitions are stamped with the wall time their deadline passed.
                self.metrics.observe_detection(transitions, time.time())
                self._apply(transitions)
                sight.ran(time.monotonic(), time.time())
            backlog = self.engine.due(now)

    async def _flush_loop(self) -> None:
        """Hand dirty devices to the write-behind once per flush window."""
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            self.transition_log.flush(time.monotonic())
            self._count_missed()
            self.drain_dirty(when_taken=True)
            if self.config.reconciling and self._warmed_up and not self.engine.warming_up:
                self._push_unseen_configs()
            self._status_period = refresh_period(
                len(self.engine),
                minimum=self.settings.status_refresh,
                rate=self.settings.status_refresh_rate,
            )

    def _count_missed(self) -> None:
        """Add the beats late and stale devices missed since the last flush (R18)."""
        wall = time.time()
        for device_id, missed in self.engine.count_missed(time.monotonic()):
            if self._holds(device_id):
                self.writer.add_rollup(device_id, self._minute(wall), count=0, missed=missed)

    def drain_dirty(self, *, when_taken: bool = False) -> None:
        """Hand the devices changed since the last drain to the write-behind as rows.

        ``when_taken`` (each flush window): only once the write-behind has written the
        rows of the last drain. A write of many rows can outlast several windows on
        busy CPUs, and a row built meanwhile would only replace one not yet written:
        the engine keeps the devices dirty instead, and the first drain after the write
        builds each row once, with its newest state.
        """
        if when_taken and self.writer.pending_devices:
            return
        # Every device registered is dirty, so this drain covers all of them (one
        # forgotten meanwhile leaves nothing behind).
        first_seen, self._first_seen = self._first_seen, {}
        for snap in self.engine.drain_dirty():
            if not self._holds(snap.device_id):
                continue  # its owner writes it; a takeover touches it again
            self.homeassistant.seen(snap.device_id, snap.fw, new=snap.device_id in first_seen)
            self.writer.put_device(
                device_row(snap, snap.fw, snap.metrics, first_seen=first_seen.get(snap.device_id))
            )

    async def _summary_loop(self) -> None:
        while True:
            keeper = self.keeper
            if keeper is not None:
                await self._read_fleet_counts()
            # In cluster mode one replica publishes the retained summary, the one acting
            # for partition 0, so the topic carries one stream rather than several
            # interleaved; a takeover of partition 0 moves it with the lease.
            publishes = keeper is None or keeper.acting(0)
            if publishes and self.link.connected:
                self.link.publish(
                    self.topics.fleet_summary,
                    summary_payload(
                        {s.value: n for s, n in self.fleet_counts().items()}, at=time.time()
                    ),
                )
            await asyncio.sleep(self.settings.summary_interval)

    async def _config_loop(self) -> None:
        """Follow ops changes (classes, overrides, maintenance) written by the CLI/API.

        They bump a version in the database; polling one row a second is cheap and needs
        no extra broker user for the CLI.
        """
        while True:
            await asyncio.sleep(1.0)
            await self._remove_revived()
            await self._purge_forgotten()
            try:
                async with self.sessions() as session:
                    version = await repository.get_meta(session, key=CONFIG_VERSION_KEY)
                    if version == self.config.version:
                        continue
                    classes = await repository.list_classes(session)
                    snapshots = await repository.load_devices(session)
                    forgotten = await repository.forgotten_ids(session)
                    stored = await self._read_sources(session)
            except Exception as exc:  # noqa: BLE001 - the database may be down; retry
                log.debug("config poll failed: %s", exc)
                continue
            self.config.version = version
            self._forget(self.forgotten.update(forgotten))
            self._apply_config(classes, snapshots)
            if stored is not None:
                await self._apply_sources(stored)

    async def apply_sources_change(self) -> None:
        """Watch what the stored sources say now, without the poll's delay (the API)."""
        async with self.sessions() as session:
            stored = await self._read_sources(session)
        if stored is not None:
            await self._apply_sources(stored)

    async def _read_sources(self, session: AsyncSession) -> dict[str, StoredSource] | None:
        try:
            return await load_stored(session, besides=self.file_adapters, keep=self._stored)
        except SourceConfigError as exc:
            # A row this clawbeat cannot use: keep watching what it watches.
            log.error("stored sources not applied: %s", exc)
            return None

    async def _apply_sources(self, stored: dict[str, StoredSource]) -> None:
        """Route to the stored sources' adapters now, and (un)subscribe their filters."""
        async with self._sources_lock:
            sources, link = self.sources, self.link
            # Unchanged declarations keep the adapter in use (a concurrent re-read may
            # have made a twin): its state (Sparkplug sessions) must live on.
            stored = {
                name: current
                if (current := self._stored.get(name)) is not None
                and (current.kind, current.options) == (new.kind, new.options)
                else new
                for name, new in stored.items()
            }
            if stored.keys() == self._stored.keys() and all(
                new is self._stored[name] for name, new in stored.items()
            ):
                return
            hosts_before = _host_ids(self.source_adapters)
            self._stored = stored
            self.source_adapters = [*self.file_adapters, *(s.adapter for s in stored.values())]
            sources.replace(self.source_adapters)
            before = set(link.subscriptions)
            await link.set_subscriptions((*self._subscriptions, *sources.filters))
            after = set(link.subscriptions)
            log.info(
                "stored sources applied: %s; subscribed to %s, unsubscribed from %s",
                ", ".join(stored) or "none",
                ", ".join(sorted(after - before)) or "nothing",
                ", ".join(sorted(before - after)) or "nothing",
            )
            if _host_ids(self.source_adapters) != hosts_before:
                log.warning("a changed primary_host_id applies at the monitor's next start")

    def _apply_config(self, classes: list[DeviceClass], snapshots: list[StoredDevice]) -> None:
        """Carry out what config sync says the stored configuration asks for."""
        engine = self.engine
        now, wall = time.monotonic(), time.time()
        # Statuses to republish: the interval or class they show changed.
        outdated = set(engine.set_classes(self.config.policies(classes)))
        self._retime_sight()  # the smallest grace may have changed
        for change in self.config.changes(classes, snapshots, known=engine.__contains__):
            device_id = change.device_id
            current = engine.snapshot(device_id)
            if current is None:
                continue
            if current.device_class != change.class_name:
                outdated.add(device_id)
            engine.set_class(device_id, change.class_name)
            self.risk.set_class(device_id, change.class_name)
            if change.override_changed:
                engine.set_interval_override(device_id, change.override)
            if self._effective_interval(device_id) != current.effective_interval:
                outdated.add(device_id)
            if change.push_changed:
                self._push_config(device_id, change.push)
            if change.maintenance is not None:
                self._apply(engine.set_maintenance(device_id, change.maintenance, now, wall))
        for device_id in outdated:
            changed = engine.snapshot(device_id)
            if changed is not None:
                self._publish_status(changed)
        log.info("applied configuration changes")

    async def apply_config_change(
        self, version: str, *, previous: str | None, device_ids: Collection[str] | None
    ) -> None:
        """Apply an ops change the caller (the API) just committed, without the poll's delay.

        ``version`` is the config version the caller wrote, replacing ``previous``. Only
        ``device_ids`` are reloaded (all devices for ``None``, e.g. a class change). The
        poll loop is told it has seen ``version`` only if it had already applied
        ``previous`` and nobody bumped the version since: otherwise another change (a
        CLI's, another replica's) would be skipped, so the poll loop reloads everything
        as usual.
        """
        async with self.sessions() as session:
            classes = await repository.list_classes(session)
            if device_ids is None:
                snapshots = await repository.load_devices(session)
            else:
                snapshots = await repository.stored_devices(session, ids=device_ids)
            current = await repository.get_meta(session, key=CONFIG_VERSION_KEY)
        self._apply_config(classes, snapshots)
        if current == version and previous == self.config.version:
            self.config.version = version

    @property
    def started_wall(self) -> float:
        return self._started_wall

    def _push_config(self, device_id: str, interval: float | None) -> None:
        if not self.acts_for(device_id):
            return
        # An empty retained message clears the topic: the device keeps its own interval.
        payload = b"" if interval is None else encode_config(ConfigUpdate(interval))
        self.link.publish(self.topics.config(device_id), payload)

    def config_message(self, device_id: str, payload: bytes, *, retained: bool) -> None:
        """A message on a config topic: what the broker holds for a device, reconciled.

        The broker replays every retained config when the monitor subscribes (at start
        and after each reconnect), and that is what a device gets when it subscribes.
        One the database does not want -- left by an earlier monitor or database, or
        unreadable -- is rewritten with what it wants, or cleared. A message that is not
        retained is a live copy of a publish (the monitor's own): nothing to check.
        """
        if not retained:
            return
        push = self.config.held(device_id, payload)
        if push is not None:
            log.debug("config of %s %s to what the database wants", device_id, push.action)
            self._push_config(device_id, push.interval)

    def _push_unseen_configs(self) -> None:
        """Warm-up is over: push the configs the database wants that the broker lacked.

        By now the broker has replayed what it retained (the replay follows the
        subscription, warm-up lasts at least an interval). A config pushed twice is
        harmless: the device is told the interval it already has.
        """
        pushes = self.config.unseen()
        for push in pushes:
            self._push_config(push.device_id, push.interval)
        counts = self.config.counts
        if counts["pushed"] or counts["cleared"] or counts["rewritten"]:
            log.info(
                "config topics reconciled with the database: %d cleared, %d rewritten, "
                "%d pushed (missing on the broker)",
                counts["cleared"],
                counts["rewritten"],
                counts["pushed"],
            )

    # ------------------------------------------------------------ sight

    def _probe_timing(self) -> tuple[float, float]:
        """The link probe's (timeout, interval): from the smallest grace, unless set."""
        if self.settings.link_probe_timeout is not None:
            timeout = self.settings.link_probe_timeout
            return timeout, timeout / 2.0
        min_grace = min(p.grace for p in self.engine.classes.values())
        return probe_timing(min_grace, self.settings.mqtt_keepalive)

    def _retime_sight(self) -> None:
        self.sight.timeout, self.sight.every = self._probe_timing()

    def _send_probe(self, now: float) -> None:
        self._probe_seq += 1
        if self.link.send_probe(str(self._probe_seq).encode()):
            self.sight.sent(self._probe_seq, now)

    def probe_echo(self, topic: str, payload: bytes, now: float) -> bool:
        """Ingest's hook for messages outside the device tree: the probe's echo."""
        if topic != self._probe_topic:
            return False
        try:
            seq = int(payload)
        except ValueError:
            return True
        self._sight_changed(self.sight.echoed(seq, now), now)
        return True

    def _sight_changed(self, change: SightChange | None, now: float) -> None:
        """Blindness began or ended: freeze the engine's timeouts, or re-arm them."""
        if change is None or self._stop.is_set():
            return
        if change.blind:
            self.engine.suspend(now)
            self.risk.blind()
            log.warning("blind: %s; device timeouts suspended", change.detail)
            return
        # No deadline before now + interval + grace (R15); warm-up, if on, restarts.
        self.engine.resume(now)
        self.risk.seeing(now)
        if not self._seen:
            self._seen = True
            log.info("the fleet is in sight: the broker answered the link probe")
            return
        log.info(
            "seeing again after %.1f s blind (%s): what the broker queued meanwhile has "
            "been read; device timeouts resume with interval + grace from now",
            change.blind_for,
            change.reason.value,
        )

    # ------------------------------------------------------------ connection

    async def _on_connected(self) -> None:
        now = time.monotonic()
        if not self._warmed_up:
            # Warm-up starts at the first connection: only then can devices be heard.
            self.engine.start_warmup(now, self.settings.warmup)
            self._warmed_up = True
            # Devices forgotten while no monitor ran: what the broker retains for them
            # (its replay of heartbeats and presence is cleared as it comes, too).
            for device_id in self.forgotten.ids():
                self._clear_retained(self.forgotten.retained_topics(device_id))
        # run() starts the engine blind (suspended). Sight -- and the engine's timeouts
        # -- return with the echo of a probe sent now, once everything the broker
        # queued before it (a resumed session, the retained replay) has been read.
        self._sight_changed(self.sight.connected(now, probe=self.link.probe_subscribed), now)
        if self.sight.probe_due(now):
            self._send_probe(now)
        self.link.publish(self.presence_topic, self._presence("online", since=time.time()))
        if self._acting_partition(0):
            self._publish_cluster_presence("online", since=time.time())

    def _presence(self, state: str, *, since: float | None, reason: str | None = None) -> bytes:
        return monitor_presence_payload(
            state,
            since=since,
            instance=self.instance,
            reason=reason,
            replica=None if self.keeper is None else self.replica,
        )

    def _on_disconnected(self) -> None:
        # Blind, not dead: the devices may be fine. Freeze every timeout until we see again.
        now = time.monotonic()
        self._sight_changed(self.sight.disconnected(now), now)

    def _send_command(self, topic: str, payload: bytes) -> None:
        # A source's reply (a Sparkplug rebirth request): each one matters, none retained.
        self.link.publish(topic, payload, retain=False, coalesce=False)

    # ------------------------------------------------------------ cluster

    async def _lease_loop(self, keeper: LeaseKeeper) -> None:
        """Renew, rebalance and hand off (the keeper) every ``renew_every``, and take over
        what it acquired beside it: a takeover reading a large partition must not hold
        up the next renewal, or the leases it has would lapse meanwhile."""
        taking: asyncio.Task[None] | None = None
        try:
            while True:
                started = time.monotonic()
                try:
                    await keeper.step()
                except StoreError as exc:
                    # Leases lapse by valid_until on their own; the next step tries again.
                    log.warning("cluster: lease step failed (%s); held %d", exc, len(keeper.leases))
                lost = self._caught_up - keeper.leases.keys()
                if lost:
                    # Expired or taken while we could not renew: its new owner decides.
                    self._caught_up -= lost
                    self._let_go(frozenset(lost))
                    log.warning("cluster: lost partitions %s", partition_spans(lost))
                if self._subscription_change:
                    await self._subscribe_held()
                taken = frozenset(keeper.leases.keys() - self._caught_up)
                if taken and (taking is None or taking.done()):
                    taking = asyncio.create_task(self._take_over_or_retry(taken))
                elapsed = time.monotonic() - started
                await asyncio.sleep(max(0.0, keeper.timing.renew_every - elapsed))
        finally:
            if taking is not None:
                taking.cancel()
                await asyncio.gather(taking, return_exceptions=True)

    async def _take_over_or_retry(self, partitions: frozenset[int]) -> None:
        try:
            await self._take_over(partitions)
        except StoreError as exc:
            # Still held and not taken over: the next lease step starts it again.
            log.warning(
                "cluster: taking over %s failed (%s); retrying", partition_spans(partitions), exc
            )

    def _devices_in(self, partitions: frozenset[int]) -> list[str]:
        engine = self.engine
        return [d for d in list(engine.device_ids()) if self.partition(d) in partitions]

    async def _take_over(self, partitions: frozenset[int]) -> None:
        """Act for ``partitions`` from now: catch the world up with the engine.

        The engine kept these devices' state from the same stream (hot standby); the
        database holds what their previous owner told (everything it wrote under its
        epoch is visible once the lease is ours, docs/cluster.md). Each device whose
        state differs gets the transition the previous owner did not make -- a device
        that died in the gap is reported once, here -- and every row is written again.
        """
        engine = self.engine
        if self._routed:
            await self._load_partitions(partitions)
        async with self.sessions() as session:
            told = await repository.device_states(session)
        open_alerts = await self.alerting.load_open_alerts()
        # No await from here on: nothing changes the engine between the diff and acting.
        known = {s.value: s for s in State}
        devices = self._devices_in(partitions)
        transitions: list[Transition] = []
        changed: set[str] = set()
        for device_id in devices:
            stored = told.get(device_id)
            caught = engine.catch_up(device_id, None if stored is None else known.get(stored))
            if caught:
                transitions += caught
                changed.add(device_id)
        engine.touch(devices)
        # Drops the previous owner may have held undecided when it stopped: as far back
        # as a lease, a storm window and a will hold reach.
        s = self.settings
        undecided_since = time.time() - (
            s.lease_ttl + s.storm_window + s.will_hold + s.flush_interval + 5.0
        )
        self.alerting.adopt(
            [d for d in devices if d not in changed],
            open_alerts,
            undecided_since=undecided_since,
        )
        keeper = self.keeper
        assert keeper is not None
        # Released or lost while this was read: not ours to act for any more.
        partitions = frozenset(p for p in partitions if p in keeper.leases)
        self._caught_up |= partitions
        self._apply([tr for tr in transitions if self.partition(tr.device_id) in partitions])
        if self._routed:
            await self._subscribe_held()
        if 0 in partitions:
            self._publish_cluster_presence("online", since=time.time())
        log.info(
            "cluster: acting for partitions %s: %d devices, %d changed while not acted for",
            partition_spans(partitions),
            len(devices),
            len(changed),
        )

    def _acting_partition(self, partition: int) -> bool:
        keeper = self.keeper
        return keeper is not None and partition in self._caught_up and keeper.acting(partition)

    def _publish_cluster_presence(
        self, state: str, *, since: float, reason: str | None = None
    ) -> None:
        """``monitor/presence`` in cluster mode: the cluster's, told by the replica acting
        for partition 0 (as the fleet summary is). It carries no will: a replica's will
        is on its own topic, and one replica's death is not the cluster's."""
        payload = self._presence(state, since=since, reason=reason)
        self.link.publish(self.topics.monitor_presence, payload)

    async def _last_replica(self) -> bool:
        """Whether no other replica is alive (so the cluster stops with this one)."""
        keeper = self.keeper
        assert keeper is not None
        try:
            async with self.sessions() as session:
                members = await lease_store.live_members(session)
        except StoreError:
            return False  # unknown: the cluster's presence is left as it is
        return all(member == keeper.owner for member in members)

    async def _hand_off(self, partitions: frozenset[int]) -> None:
        """Before the keeper releases ``partitions``: stop acting, write what is queued."""
        log.info("cluster: handing partitions %s over", partition_spans(partitions))
        self._caught_up -= partitions
        self.drain_dirty()
        await self.writer.flush()
        self._let_go(partitions)

    def _let_go(self, partitions: frozenset[int]) -> None:
        """Another replica decides for ``partitions`` now (released or lost)."""
        devices = self._devices_in(partitions)
        self.alerting.release(devices)
        if self._routed:
            # Not heard from now on: a record kept would only go stale here, silently.
            engine = self.engine
            for device_id in devices:
                engine.forget(device_id)
            self._subscription_change = True

    async def _load_partitions(self, partitions: frozenset[int]) -> None:
        """Load a taken partition's devices (routed: the engine had not heard them), and
        give them interval + grace to be heard before any deadline judges them."""
        engine = self.engine
        for device_id in self._devices_in(partitions):
            engine.forget(device_id)  # left from an earlier hold: the database is newer
        now, wall = time.monotonic(), time.time()
        loaded: list[str] = []
        async with self.sessions() as session:
            classes = await repository.list_classes(session)
            by_class = {c.name: c.interval for c in classes}
            async for rows in stream_devices(session):
                mine = [row for row in rows if self.partition(row[0]) in partitions]
                engine.load_persisted(mine, now, wall)
                self.config.remember_persisted(mine, by_class)
                loaded += (row[0] for row in mine)
        engine.listen_first(loaded, now)

    async def _subscribe_held(self) -> None:
        """Heartbeat and presence filters of the partitions taken over (routed mode)."""
        self._subscription_change = False
        link, sources = self.link, self.sources
        count = self.settings.partitions
        held = self._caught_up
        self._subscriptions = (
            *(partition_topics.filters(self.topics, held, of=count) if held else ()),
            self.topics.config_filter,
        )
        await link.set_subscriptions((*self._subscriptions, *sources.filters))
        log.debug("cluster: subscribed to partitions %s", partition_spans(held) or "none")

    # ------------------------------------------------------------ run

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, faces: Sequence[Face] = ()) -> int:
        """Run until stopped; ``faces`` (the HTTP server) are bound after the start-up load
        and served beside the service's own loops."""
        # Open alerts, rules, windows; at-risk rules alert on the scorer's passes.
        await self.alerting.start(
            self.engine, self.link, risk=self.risk if self.settings.risk_cycle > 0 else None
        )
        if self.keeper is not None:
            # The lease rows (a different CLAWBEAT_PARTITIONS is refused here, loudly).
            await self.keeper.start()
        # Until the first connection the monitor hears nothing: start blind.
        self.engine.suspend(time.monotonic())
        self.risk.blind()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            for face in faces:
                face.bind()  # a taken port or bad TLS key fails the start, loudly
        except BaseException:
            await self.db.dispose()
            if self._replica_lock is not None:
                self._replica_lock.release()
            raise
        tasks = [
            asyncio.create_task(self.writer.run(), name="writer"),
            asyncio.create_task(self.link.run(), name="mqtt"),
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._summary_loop(), name="summary"),
            asyncio.create_task(self._config_loop(), name="config"),
            asyncio.create_task(self.alerting.run(), name="alerts"),
            asyncio.create_task(
                self.homeassistant.run(self.link, self.engine.__contains__), name="homeassistant"
            ),
        ]
        if self.settings.risk_cycle > 0:
            tasks.append(asyncio.create_task(self.risk.run(), name="risk"))
        if self.keeper is not None:
            tasks.append(asyncio.create_task(self._lease_loop(self.keeper), name="leases"))
        tasks += [asyncio.create_task(face.serve(), name=face.name) for face in faces]
        if self.sparkplug_host is not None:
            tasks.append(asyncio.create_task(self.sparkplug_host.run(), name="sparkplug-host"))
        stop_wait = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stop_wait and t.exception() is not None]
        for task in failed:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())
        await self._shutdown(tasks)
        return 1 if failed else 0

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        log.info("stopping: flushing state and publishing monitor offline")
        # No message may change the engine once its last state is being written.
        self.link.stop_intake()
        if self.sparkplug_host is not None:
            await self.sparkplug_host.close()  # STATE offline before anything else goes
        for task in tasks:
            if task.get_name() not in ("writer", "mqtt"):
                task.cancel()
        leases = [t for t in tasks if t.get_name() == "leases"]
        await asyncio.gather(*leases, return_exceptions=True)  # no step under way now
        self.drain_dirty()
        await self.alerting.close()  # held alerts decided and written, sends finished
        if self._acting_partition(0) and await self._last_replica():
            self._publish_cluster_presence(
                "offline", since=time.time(), reason=OfflineReason.SHUTDOWN
            )
        await self.link.flush(within=3)
        if self.keeper is not None:
            # Flush under the leases, release them and leave: survivors take over at
            # their next step instead of waiting for expiry.
            try:
                await self.keeper.stop()
                log.info("cluster: leases released")
            except StoreError as exc:
                log.warning("cluster: leases not released (%s); they expire", exc)
        await self.writer.close()
        offline = self._presence("offline", since=time.time(), reason=OfflineReason.SHUTDOWN)
        await self.link.stop(Outgoing(self.presence_topic, offline, retain=True))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.db.dispose()
        if self._replica_lock is not None:
            self._replica_lock.release()
        self.transition_log.flush(time.monotonic(), force=True)
        log.info("stopped")

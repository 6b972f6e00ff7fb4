"""What the monitor service is built from, made before it: :func:`open_monitor`.

Reading the database -- the schema check, devices, classes, forgotten ids, stored
sources -- is asynchronous and may fail; a constructor is neither. So a monitor starts
in two steps, ``parts = await open_monitor(settings)`` then ``MonitorService(settings,
parts)``, and every part of the service exists from its construction on.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from device_client.errors import InvalidBrokerUrl
from device_client.protocol import Topics
from device_client.urls import BrokerUrl, parse_broker_urls
from monitor import gc_policy
from monitor.cluster import leases as lease_store
from monitor.cluster.single_replica import ReplicaLock, claim_single_replica
from monitor.config_sync import TIMING_SETTINGS, ConfigSync, DefaultTiming
from monitor.errors import ConfigError
from monitor.forgotten_devices import ForgottenDevices
from monitor.liveness.engine import LivenessEngine
from monitor.ops import config_version
from monitor.ops.sources import StoredSource, stored_adapters
from monitor.settings import MonitorSettings
from monitor.sources.base import Adapter
from monitor.sources.config import load_sources
from monitor.store import repository
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.device_stream import stream_devices
from monitor.store.migrate import check_schema

log = logging.getLogger("clawbeat.monitor")


@dataclass(frozen=True)
class MonitorParts:
    """The loaded state and connections a :class:`MonitorService` is made of."""

    addresses: tuple[BrokerUrl, ...]
    """The broker's nodes, first the one to try first (a password never in repr)."""
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    engine: LivenessEngine
    config: ConfigSync
    forgotten: ForgottenDevices
    file_adapters: list[Adapter]
    """Sources of the sources file (a bad file fails the start)."""
    stored_sources: dict[str, StoredSource]
    replica_lock: ReplicaLock | None
    """SQLite's single-replica lock, held for the process's life (None on PostgreSQL)."""

    async def close(self) -> None:
        """Give back what was opened: for a start that stops before the service runs."""
        await self.db.dispose()
        if self.replica_lock is not None:
            self.replica_lock.release()


def broker_addresses(settings: MonitorSettings) -> tuple[BrokerUrl, ...]:
    """The broker URLs of ``settings`` (comma-separated: one cluster's nodes), parsed by
    the SDK's parser, whose errors and repr never show the password."""
    try:
        addresses = parse_broker_urls(settings.mqtt_url)
    except InvalidBrokerUrl as exc:
        raise ConfigError(str(exc)) from exc
    if settings.mqtt_password is not None:
        secret = settings.mqtt_password.get_secret_value()
        addresses = tuple(replace(a, password=secret) for a in addresses)
    return addresses


def default_timing(settings: MonitorSettings) -> ConfigSync:
    """Config sync with the class defaults the settings give (CLAWBEAT_GRACE, ...)."""
    return ConfigSync(
        DefaultTiming(
            grace=settings.grace,
            missed_limit=settings.missed_limit,
            lost_after=settings.lost_after,
            explicit=frozenset(settings.model_fields_set & set(TIMING_SETTINGS)),
        )
    )


async def open_monitor(settings: MonitorSettings) -> MonitorParts:
    """Check the settings, lock, connect and load: everything a service needs, or raise.

    Raises ``ConfigError`` (bad broker URL, sources file, a lone monitor beside a
    cluster), ``SecondReplica`` (SQLite in use), ``StoreError`` (database missing,
    unmigrated, unreachable).
    """
    addresses = broker_addresses(settings)
    file_adapters = load_sources(settings.sources_file) if settings.sources_file else []
    # The schema first: a database that is not there gets no lock file beside it either.
    await check_schema(settings.database_url)
    lock = claim_single_replica(settings.database_url)
    db = create_engine_for(settings.database_url)
    sessions = make_session_factory(db)
    forgotten = ForgottenDevices(Topics(settings.topic_root))
    try:
        if not settings.cluster and settings.database_url.startswith("postgresql"):
            await _refuse_beside_a_cluster(sessions)
        engine, config = await _load(settings, sessions, forgotten)
        stored = await stored_adapters(sessions, besides=file_adapters)
    except BaseException:
        await db.dispose()
        if lock is not None:
            lock.release()
        raise
    return MonitorParts(
        addresses=addresses,
        db=db,
        sessions=sessions,
        engine=engine,
        config=config,
        forgotten=forgotten,
        file_adapters=file_adapters,
        stored_sources=stored,
        replica_lock=lock,
    )


async def _refuse_beside_a_cluster(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A monitor alone on a database where cluster replicas run would write over their
    partitions unfenced: it stops, in one line, instead."""
    async with sessions() as session:
        members = await lease_store.live_members(session)
    if members:
        raise ConfigError(
            f"{len(members)} cluster replicas run on this database "
            f"({', '.join(sorted(members)[:3])}): start this monitor with "
            "CLAWBEAT_CLUSTER=true to join them (docs/cluster.md)"
        )


async def _load(
    settings: MonitorSettings,
    sessions: async_sessionmaker[AsyncSession],
    forgotten: ForgottenDevices,
) -> tuple[LivenessEngine, ConfigSync]:
    config = default_timing(settings)
    async with sessions() as session:
        # The version first: a change committed while loading is then seen as newer by
        # the poll loop, and applied.
        version = await config_version.read(session)
        forgotten.update(await repository.forgotten_ids(session))
        # A flush of the previous monitor racing `devices forget` may have written a
        # forgotten device back: it stays forgotten.
        if await repository.purge_forgotten(session, device_ids=forgotten.ids()):
            await session.commit()
        classes = await repository.list_classes(session)
        policies = config.policies(classes)
        engine = LivenessEngine(
            classes=policies,
            default_interval=settings.default_interval,
            will_hold=settings.will_hold,
        )
        now, wall = time.monotonic(), time.time()
        by_class = {c.name: c.interval for c in classes}
        # Chunk by chunk, as plain tuples: the engine's records are all that stays. The
        # collector is off meanwhile: a million new long-lived objects would otherwise
        # trigger full passes over all of them, again and again.
        gc.disable()
        try:
            # A cluster replica on a broker routing by partition hears only the
            # partitions it holds: it loads each as it takes it over, not now.
            if not (settings.cluster and settings.partition_topics):
                async for rows in stream_devices(session):
                    engine.load_persisted(rows, now, wall)
                    config.remember_persisted(rows, by_class)
        finally:
            gc.enable()
    config.loaded(version)
    log.info("loaded %d devices and %d classes", len(engine), len(policies))
    # A million long-lived device records would make every full GC pass walk them all
    # (~0.5 s stalls); they live as long as the process, so take them out of it, and
    # collect far less often in the steady state (monitor/gc_policy.py).
    gc_policy.settle()
    return engine, config

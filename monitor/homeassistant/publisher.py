"""Keeps Home Assistant's MQTT discovery topics in step with the fleet clawbeat knows.

The service calls three things: :meth:`Discovery.run` (a task beside its loops),
:meth:`Discovery.seen` for every device it hands to the store (a device new to it, or
one whose firmware changed, is published) and :meth:`Discovery.forget` when ops forget a
device (its discovery topics are cleared, so HA removes it).

At start the monitor reconciles with what it published before, recorded in the
database (``monitor_meta``, key :data:`META_KEY`): discovery on publishes every known
device (and clears the forgotten ones); discovery turned off, or moved to another prefix
or topic root, clears what the record says was published, then the record goes. The
database, not the broker, is asked which devices those are: a monitor cannot list the
retained topics of a prefix without subscribing to all of it.

Everything goes out at most ``rate`` devices a second, so a fleet of 100,000 does not
queue 200,000 messages on the link at once, and never while the link already holds a
backlog (the broker is away): the queue here stays in device ids, not payloads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from device_client.backoff import Backoff
from device_client.protocol import Topics
from monitor.homeassistant.discovery import Target, decode_targets, device_payloads, encode_targets
from monitor.settings import MonitorSettings
from monitor.store import repository
from monitor.store.errors import StoreError

META_KEY = "homeassistant_discovery"
# Publishes the link may hold before this waits: about a second's worth at the default rate.
_BACKLOG = 400
_SLICE = 0.1  # seconds: the rate is spent in slices this long

log = logging.getLogger("clawbeat.homeassistant")

try:
    _VERSION = version("clawbeat")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    _VERSION = "0+unknown"


class Link(Protocol):
    """What this needs of the monitor's MQTT link (retained, coalesced publishes)."""

    def publish(self, topic: str, payload: bytes) -> None: ...

    @property
    def pending(self) -> int: ...


class Discovery:
    def __init__(
        self,
        settings: MonitorSettings,
        topics: Topics,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.enabled = settings.homeassistant_discovery
        self._target = Target.for_root(settings.homeassistant_prefix, topics.root)
        self._topics = topics
        self._sessions = sessions
        self._rate = settings.homeassistant_rate
        # (device id, where, publish?) -- live changes first, start-up reconciliation after.
        self._live: deque[tuple[str, Target, bool]] = deque()
        self._bulk: deque[tuple[str, Target, bool]] = deque()
        self._wakeup = asyncio.Event()
        # Firmware versions published (only devices that announce one): a new version is
        # republished as the HA device's sw_version.
        self._fw: dict[str, str] = {}
        self._link: Link | None = None
        self.published = 0
        self.cleared = 0

    # ------------------------------------------------------------ service hooks

    def seen(self, device_id: str, fw: str | None, *, new: bool) -> None:
        """A device the service stores: ``new`` when it was first registered just now."""
        if not self.enabled:
            return
        changed = fw is not None and self._fw.get(device_id) != fw
        if changed:
            assert fw is not None
            self._fw[device_id] = fw
        if new or changed:
            self._queue(self._live, device_id, self._target, publish=True)

    def forget(self, device_id: str) -> None:
        """Ops forgot the device: clear its discovery topics (HA removes the device).

        At once, not queued: called before the service clears the device's status, these
        reach the broker first, so HA removes the entities instead of reading an empty
        status. A publish of the device still queued is skipped (it is no longer tracked).
        """
        if not self.enabled:
            return
        self._fw.pop(device_id, None)
        if self._link is None:
            self._queue(self._live, device_id, self._target, publish=False)
        else:
            self._clear(self._link, device_id, self._target)

    # ------------------------------------------------------------ the task

    async def run(self, link: Link, tracked: Callable[[str], bool]) -> None:
        """Reconcile, then publish what the hooks queue, forever.

        ``tracked`` tells whether the service still tracks a device when its turn comes:
        a device forgotten while queued is not published again after its clearing.
        """
        self._link = link
        rewrite = await self._reconcile()
        while True:
            await self._drain(link, tracked)
            if rewrite and not self._bulk:
                # What the old record named is cleared: from now on only the present
                # target can be on the broker (a crash before this clears once more).
                await self._record({self._target} if self.enabled else set())
                rewrite = False
            await self._wakeup.wait()
            self._wakeup.clear()

    async def _reconcile(self) -> bool:
        """Queue the start-up work; True when the record must be rewritten once it is done."""
        backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(), spread=0.2)
        while True:
            try:
                return await self._load()
            except StoreError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "cannot read the fleet for Home Assistant discovery (%s); retry in %.0fs",
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _load(self) -> bool:
        self._bulk.clear()  # a load that failed half-way is done again from the start
        async with self._sessions() as session:
            recorded = decode_targets(await repository.get_meta(session, key=META_KEY))
            wanted = self._target if self.enabled else None
            stale = recorded - {wanted}
            if wanted is None and not stale:
                return False
            if wanted is not None and wanted not in recorded:
                # Recorded before anything is published: a monitor stopped half-way must
                # still know at its next start that these topics may be on the broker.
                await repository.set_meta(
                    session,
                    key=META_KEY,
                    value=encode_targets(recorded | {wanted}),
                    now=datetime.now(UTC),
                )
                await session.commit()
            forgotten = await repository.forgotten_ids(session)
            known = 0
            async for partition in repository.iter_device_firmware(session):
                for device_id, fw in partition:
                    known += 1
                    for target in stale:
                        self._bulk.append((device_id, target, False))
                    if wanted is not None:
                        if fw:
                            self._fw[device_id] = fw
                        self._bulk.append((device_id, wanted, True))
        for device_id in sorted(forgotten):
            for target in stale | ({wanted} if wanted is not None else set()):
                self._bulk.append((device_id, target, False))
        for target in stale:
            log.info(
                "Home Assistant discovery under %s/…/%s/: clearing it for %d devices",
                target.prefix,
                target.node,
                known + len(forgotten),
            )
        if wanted is not None:
            log.info(
                "Home Assistant discovery under %s/: publishing %d devices", wanted.prefix, known
            )
        self._wakeup.set()
        return bool(stale)

    async def _drain(self, link: Link, tracked: Callable[[str], bool]) -> None:
        per_slice = max(1, round(self._rate * _SLICE))
        while self._live or self._bulk:
            if link.pending > _BACKLOG:
                await asyncio.sleep(_SLICE)
                continue
            started = time.monotonic()
            for _ in range(per_slice):
                queue = self._live or self._bulk
                if not queue:
                    break
                device_id, target, publish = queue.popleft()
                if publish:
                    if not tracked(device_id):
                        continue
                    for topic, payload in device_payloads(
                        target,
                        self._topics,
                        device_id,
                        fw=self._fw.get(device_id),
                        version=_VERSION,
                    ):
                        link.publish(topic, payload)
                    self.published += 1
                else:
                    self._clear(link, device_id, target)
            await asyncio.sleep(max(0.0, _SLICE - (time.monotonic() - started)))

    def _clear(self, link: Link, device_id: str, target: Target) -> None:
        for topic in target.topics(device_id):
            # A zero-length retained publish deletes the retained config: HA removes the
            # entity, and the device once it has none left.
            link.publish(topic, b"")
        self.cleared += 1

    async def _record(self, targets: set[Target]) -> None:
        try:
            async with self._sessions() as session:
                await repository.set_meta(
                    session,
                    key=META_KEY,
                    value=encode_targets(targets),
                    now=datetime.now(UTC),
                )
                await session.commit()
        except StoreError as exc:
            # Harmless: the next start clears (or republishes) once more.
            log.warning("cannot record Home Assistant discovery state: %s", exc)

    def _queue(
        self,
        queue: deque[tuple[str, Target, bool]],
        device_id: str,
        target: Target,
        *,
        publish: bool,
    ) -> None:
        queue.append((device_id, target, publish))
        self._wakeup.set()

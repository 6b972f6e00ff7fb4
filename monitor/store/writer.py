"""Write-behind: the event loop hands rows over without waiting; a background task batches them.

Rules:

* Device rows are coalesced per device id: whatever arrives within one flush window,
  only the latest row per device is written, so the database sees at most one write
  per device per window however often a device heartbeats. The buffer is bounded by
  the number of devices (``max_pending_devices`` guards against runaway ids).
* Transitions wake the flusher at once and are written in the order they were put,
  ahead of device rows and rollups. They are never dropped on a database error: they
  wait, in order, until the database is back. The only loss is deliberate: past
  ``max_pending_transitions`` (about 300 bytes each) the oldest are dropped with an
  error log, rather than letting an endless outage exhaust memory.
* Rollups are added up in memory per (device, minute) and written additively.
  ``max_pending_rollups`` bounds them; past it, new (device, minute) pairs are dropped
  (dashboards lose figures, nothing else does).
* A database that goes away is retried with capped, jittered exponential backoff. It is
  logged once when the outage starts and once when it ends, not on every retry.
* A row the database refuses for its content (a constraint or type error, which no
  retry can fix) is isolated by writing its batch row by row; only that row is dropped,
  with an error log, so one bad row cannot block every write behind it.
* Cluster mode (``fence``, ``docs/cluster.md``): every batch is written under the fence
  of the partitions this replica holds at that moment (a :class:`WriteFence`). Rows of
  partitions it no longer holds are refused by the database, counted in
  ``stats.rows_fenced`` and dropped, never retried: a lost epoch never comes back.
* Retried transition batches cannot insert duplicates: each transition carries a
  ``uid`` and inserts are ``ON CONFLICT (uid) DO NOTHING``. Rollups are additive, so a
  commit whose acknowledgement was lost and is retried counts that batch twice; that
  error is accepted for dashboard figures.

Only the flusher touches the database; ``put_*`` and ``add_rollup`` are plain
synchronous methods for the event loop thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from device_client.backoff import Backoff
from monitor.store import repository
from monitor.store.database import translated
from monitor.store.errors import DataRejected, StoreError, StoreUnavailable, WriterClosed
from monitor.store.fence import Rejections, WriteFence
from monitor.store.rows import DeviceRow, RollupRow, TransitionRow, superseding

_T = TypeVar("_T")

ROWS_PER_TRANSACTION: Final = 5_000
_CLOSE_RETRY_DELAY: Final = 0.2


@dataclass(frozen=True, slots=True)
class FlushReport:
    """One flush attempt, for metrics hooks (``on_flush``)."""

    devices: int
    transitions: int
    rollups: int
    seconds: float
    ok: bool
    error: str | None = None


@dataclass(slots=True)
class WriterStats:
    """Counters since the writer was created; read them, don't write them."""

    flushes: int = 0
    failed_flushes: int = 0
    outages: int = 0
    device_puts: int = 0
    devices_written: int = 0
    transitions_written: int = 0
    rollups_written: int = 0
    rows_rejected: int = 0
    # Cluster mode: rows refused because their partition's lease had moved on. A batch
    # whose commit fails and is retried counts its refusals again.
    rows_fenced: int = 0
    device_rows_dropped: int = 0
    transitions_dropped: int = 0
    rollups_dropped: int = 0
    last_batch_devices: int = 0
    last_batch_transitions: int = 0
    last_batch_rollups: int = 0
    last_flush_seconds: float = 0.0


def _require_aware(value: datetime | None, what: str) -> None:
    # Three of these per device row: the monitor's own rows carry UTC itself, which one
    # identity test settles (utcoffset() is a method call).
    if value is None or value.tzinfo is UTC:
        return
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware UTC datetime, got {value!r}")


class WriteBehind:
    """Batches device rows, transitions and rollups into the database in the background.

    Start :meth:`run` as a task; call :meth:`close` on shutdown to write what is left.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 1.0,
        rollup_interval: float = 10.0,
        max_pending_devices: int = 1_000_000,
        max_pending_transitions: int = 1_000_000,
        max_pending_rollups: int = 1_000_000,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        flush_timeout: float = 30.0,
        close_timeout: float = 10.0,
        logger: logging.Logger | None = None,
        on_flush: Callable[[FlushReport], None] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fence: Callable[[], WriteFence] | None = None,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self._session_factory = session_factory
        self._flush_interval = flush_interval
        # Per-minute heartbeat figures feed charts, not verdicts: writing them every
        # flush window would double the rows written per heartbeat (one device row, one
        # rollup row). Accumulated in memory, they are written a few times a minute.
        self._rollup_interval = max(rollup_interval, flush_interval)
        self._next_rollups = time.monotonic() + self._rollup_interval
        self._max_devices = max_pending_devices
        self._max_transitions = max_pending_transitions
        self._max_rollups = max_pending_rollups
        self._flush_timeout = flush_timeout
        self._close_timeout = close_timeout
        self._log = logger or logging.getLogger("clawbeat.store.writer")
        self._on_flush = on_flush
        self._wall_clock = wall_clock
        self._fence = fence
        self.fenced = Rejections()  # by partition, for the cluster view and metrics

        self._devices: dict[str, DeviceRow] = {}
        self._devices_since: float | None = None
        self._transitions: deque[tuple[float, TransitionRow]] = deque()
        # Counts every transition dropped at the cap; lets a flush that was writing the
        # oldest entries know how many of them were dropped from under it.
        self._transitions_dropped_total = 0
        self._dropped_mark = 0
        self._rollups: dict[tuple[str, datetime], RollupRow] = {}
        self._rollups_since: float | None = None
        self._inflight_devices = 0
        self._inflight_rollups = 0
        self._inflight_since: float | None = None

        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closing = False
        self._closed = False
        self._run_exited: asyncio.Event | None = None
        self._db_ok = True
        self._last_error: str | None = None
        self._outage_started: float | None = None
        # Proportional jitter keeps several monitor replicas from retrying in lockstep.
        self._backoff = Backoff(base=retry_initial, cap=retry_max, rng=random.Random(), spread=0.2)
        self._overflowing: set[str] = set()
        self.stats = WriterStats()

    # --- producer side (event loop, never blocks) --------------------------------------

    def put_device(self, row: DeviceRow) -> None:
        """Queue the latest runtime state of a device; replaces any row not yet written."""
        self._check_open()
        _require_aware(row.since, "since")
        _require_aware(row.last_seen, "last_seen")
        _require_aware(row.first_seen, "first_seen")
        self.stats.device_puts += 1
        if row.id not in self._devices and len(self._devices) >= self._max_devices:
            # Losing a device row is recoverable (the device's next heartbeat queues a
            # fresh one); letting ids pile up without bound is not.
            self.stats.device_rows_dropped += 1
            self._overflow("devices", self._max_devices)
            return
        self._devices[row.id] = superseding(row, self._devices.get(row.id))
        if self._devices_since is None:
            self._devices_since = time.monotonic()

    def put_transition(self, row: TransitionRow) -> None:
        """Queue a state change; the flusher is woken to commit it promptly."""
        self._check_open()
        _require_aware(row.at, "at")
        if len(self._transitions) >= self._max_transitions:
            self._transitions.popleft()
            self._transitions_dropped_total += 1
            self.stats.transitions_dropped += 1
            self._overflow("transitions", self._max_transitions)
        self._transitions.append((time.monotonic(), row))
        self._wake.set()

    def add_rollup(
        self,
        device_id: str,
        minute: datetime,
        *,
        count: int = 1,
        missed: int = 0,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
    ) -> None:
        """Count heartbeats (or missed ones) for a device in the minute holding ``minute``."""
        self._check_open()
        # Called once per heartbeat: skip normalising a minute that is already one.
        if minute.tzinfo is not UTC or minute.second or minute.microsecond:
            _require_aware(minute, "minute")
            minute = minute.astimezone(UTC).replace(second=0, microsecond=0)
        key = (device_id, minute)
        pending = self._rollups.get(key)
        if pending is not None:
            # In place: the common case (a device's second heartbeat in a minute) then
            # allocates nothing.
            pending.add_sample(
                count=count, missed=missed, latency_ms=latency_ms, jitter_ms=jitter_ms
            )
            return
        if len(self._rollups) >= self._max_rollups:
            self.stats.rollups_dropped += 1
            self._overflow("rollups", self._max_rollups)
            return
        row = RollupRow(device_id=device_id, minute=minute)
        row.add_sample(count=count, missed=missed, latency_ms=latency_ms, jitter_ms=jitter_ms)
        self._rollups[key] = row
        if self._rollups_since is None:
            self._rollups_since = time.monotonic()

    def forget(self, device_id: str) -> None:
        """Drop what is pending for a device ops deleted, so no flush writes it back.

        A flush already under way may still write its row; the monitor forgets the
        device before the next one, and its tombstone keeps it away after a restart.
        """
        self._devices.pop(device_id, None)
        for key in [k for k in self._rollups if k[0] == device_id]:
            del self._rollups[key]

    def _check_open(self) -> None:
        if self._closing:
            raise WriterClosed("the write-behind writer is closed")

    def _overflow(self, what: str, cap: int) -> None:
        # Once per episode: the flag clears when a flush empties the buffer below the cap.
        if what not in self._overflowing:
            self._overflowing.add(what)
            self._log.error(
                "write-behind buffer for %s is full (%d pending, database %s): dropping %s",
                what,
                cap,
                "up" if self._db_ok else "unavailable",
                "the oldest" if what == "transitions" else "new entries",
            )

    # --- health ------------------------------------------------------------------------

    @property
    def pending_devices(self) -> int:
        return len(self._devices) + self._inflight_devices

    @property
    def pending_transitions(self) -> int:
        return len(self._transitions)

    @property
    def pending_rollups(self) -> int:
        return len(self._rollups) + self._inflight_rollups

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest item not yet committed; 0 when everything is written."""
        # Rollups are held back on purpose for rollup_interval; only time past that is lag.
        rollups_due = (
            None
            if self._rollups_since is None
            else self._rollups_since + self._rollup_interval - self._flush_interval
        )
        candidates = [self._devices_since, rollups_due, self._inflight_since]
        if self._transitions:
            candidates.append(self._transitions[0][0])
        oldest = min((c for c in candidates if c is not None), default=None)
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def db_ok(self) -> bool:
        """False from the first failed flush until the next successful one."""
        return self._db_ok

    # --- flusher -----------------------------------------------------------------------

    async def run(self) -> None:
        """Flush until :meth:`close`: transitions as they come, everything once per window."""
        self._run_exited = asyncio.Event()
        next_window = time.monotonic() + self._flush_interval
        retry_at = 0.0
        try:
            while not self._closing:
                if self._db_ok:
                    await self._sleep_until(next_window, wake_on_put=True)
                else:
                    await self._sleep_until(retry_at, wake_on_put=False)
                if self._closing:
                    break
                # While the database is failing, every retry is a full flush.
                full = not self._db_ok or time.monotonic() >= next_window
                try:
                    await self._flush(full=full)
                except StoreUnavailable:
                    retry_at = time.monotonic() + self._backoff.next_delay()
                if full:
                    next_window = time.monotonic() + self._flush_interval
        finally:
            self._run_exited.set()

    async def flush(self) -> None:
        """Write everything pending now; raises :class:`StoreUnavailable` if that fails."""
        await self._flush(full=True, rollups=True)

    async def close(self) -> bool:
        """Stop :meth:`run` and write what is left, within ``close_timeout`` seconds.

        Returns True when nothing was left unwritten; otherwise logs what is lost.
        """
        if self._closed:
            return self._empty()
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(self._close_timeout):
                if self._run_exited is not None:
                    await self._run_exited.wait()
                while True:
                    try:
                        await self._flush(full=True, rollups=True)
                        break
                    except StoreUnavailable:
                        await asyncio.sleep(_CLOSE_RETRY_DELAY)
        except TimeoutError:
            pass
        self._closed = True
        if not self._empty():
            self._log.error(
                "write-behind closed with %d transitions, %d device rows and %d rollups "
                "unwritten (database: %s)",
                self.pending_transitions,
                self.pending_devices,
                self.pending_rollups,
                self._last_error or "slow",
            )
            return False
        return True

    def _empty(self) -> bool:
        return not (self.pending_devices or self.pending_transitions or self.pending_rollups)

    async def _sleep_until(self, deadline: float, *, wake_on_put: bool) -> None:
        while not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (wake_on_put and self._wake.is_set()):
                return
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return
            if not wake_on_put and not self._closing:
                # A put during an outage: it waits for the next retry like the rest.
                self._wake.clear()

    async def _flush(self, *, full: bool, rollups: bool = False) -> None:
        async with self._lock:
            # Cleared before taking rows: a transition put while this flush runs sets
            # it again, so run() comes straight back for it.
            self._wake.clear()
            started = time.monotonic()
            before = (
                self.stats.devices_written,
                self.stats.transitions_written,
                self.stats.rollups_written,
            )
            error: StoreError | None = None
            try:
                await self._write_transitions()
                if full:
                    await self._write_devices()
                    if rollups or time.monotonic() >= self._next_rollups:
                        self._next_rollups = time.monotonic() + self._rollup_interval
                        await self._write_rollups()
            except StoreUnavailable as exc:
                error = exc
            seconds = time.monotonic() - started
            report = FlushReport(
                devices=self.stats.devices_written - before[0],
                transitions=self.stats.transitions_written - before[1],
                rollups=self.stats.rollups_written - before[2],
                seconds=seconds,
                ok=error is None,
                error=None if error is None else str(error),
            )
            self._record(report)
            if error is not None:
                raise error

    def _record(self, report: FlushReport) -> None:
        stats = self.stats
        stats.last_flush_seconds = report.seconds
        stats.last_batch_devices = report.devices
        stats.last_batch_transitions = report.transitions
        stats.last_batch_rollups = report.rollups
        if report.ok:
            stats.flushes += 1
            if not self._db_ok:
                down_for = time.monotonic() - (self._outage_started or time.monotonic())
                self._log.warning(
                    "database is back after %.1f s; write-behind caught up "
                    "(%d transitions, %d device rows, %d rollups written)",
                    down_for,
                    report.transitions,
                    report.devices,
                    report.rollups,
                )
            self._db_ok = True
            self._outage_started = None
            self._backoff.reset()
            self._last_error = None
            if len(self._devices) < self._max_devices:
                self._overflowing.discard("devices")
            if len(self._transitions) < self._max_transitions:
                self._overflowing.discard("transitions")
            if len(self._rollups) < self._max_rollups:
                self._overflowing.discard("rollups")
        else:
            stats.failed_flushes += 1
            self._last_error = report.error
            if self._db_ok:
                self._db_ok = False
                self._outage_started = time.monotonic()
                stats.outages += 1
                self._log.error(
                    "database unavailable, keeping writes in memory and retrying: %s "
                    "(pending: %d transitions, %d device rows, %d rollups)",
                    report.error,
                    self.pending_transitions,
                    self.pending_devices,
                    self.pending_rollups,
                )
            else:
                self._log.debug("database still unavailable: %s", report.error)
        if self._on_flush is not None:
            try:
                self._on_flush(report)
            except Exception:  # noqa: BLE001 - a metrics hook must never stop the writes
                self._log.exception("write-behind on_flush hook failed")

    async def _commit(
        self,
        what: str,
        write: Callable[[AsyncSession, Sequence[_T]], Awaitable[object]],
        rows: Sequence[_T],
    ) -> None:
        with translated(what):
            # A hung server (network partition) must become a retryable error rather
            # than a flusher stuck forever with the lock held.
            async with asyncio.timeout(self._flush_timeout):
                async with self._session_factory() as session, session.begin():
                    await write(session, rows)

    async def _write_each(
        self,
        what: str,
        write: Callable[[AsyncSession, Sequence[_T]], Awaitable[object]],
        rows: Sequence[_T],
        describe: Callable[[_T], str],
        done: Callable[[int], None],
    ) -> None:
        """Write ``rows`` in transactions, calling ``done(n)`` as each n are settled.

        Settled means committed, or refused by the database for its content and
        dropped. A :class:`StoreUnavailable` propagates with the unsettled rest untouched.
        """
        for start in range(0, len(rows), ROWS_PER_TRANSACTION):
            chunk = rows[start : start + ROWS_PER_TRANSACTION]
            try:
                await self._commit(what, write, chunk)
            except DataRejected as exc:
                self._log.warning(
                    "%s: the database refused a batch of %d (%s); retrying row by row",
                    what,
                    len(chunk),
                    exc,
                )
                for row in chunk:
                    try:
                        await self._commit(what, write, [row])
                    except DataRejected as row_exc:
                        self.stats.rows_rejected += 1
                        self._log.error("%s: dropping %s: %s", what, describe(row), row_exc)
                    done(1)
                continue
            done(len(chunk))

    # --- the three writes, fenced in cluster mode -------------------------------------

    async def _insert_transitions(
        self, session: AsyncSession, rows: Sequence[TransitionRow]
    ) -> None:
        if self._fence is None:
            await repository.insert_transitions(session, rows=rows)
            return
        self.stats.rows_fenced += await self._fence().write_transitions(
            session, rows=rows, rejections=self.fenced
        )

    async def _upsert_devices(self, session: AsyncSession, rows: Sequence[DeviceRow]) -> None:
        now = self._wall_clock()
        if self._fence is None:
            await repository.upsert_devices(session, rows=rows, now=now)
            return
        self.stats.rows_fenced += await self._fence().write_devices(
            session, rows=rows, now=now, rejections=self.fenced
        )

    async def _add_rollups(self, session: AsyncSession, rows: Sequence[RollupRow]) -> None:
        if self._fence is None:
            await repository.add_rollups(session, rows=rows)
            return
        self.stats.rows_fenced += await self._fence().write_rollups(
            session, rows=rows, rejections=self.fenced
        )

    async def _write_transitions(self) -> None:
        # Only what is queued now: a steady stream of new transitions must not keep
        # this flush from ever reaching the device rows.
        remaining = len(self._transitions)
        while remaining and self._transitions:
            size = min(remaining, ROWS_PER_TRANSACTION)
            batch = [row for _, row in itertools.islice(self._transitions, size)]
            self._dropped_mark = self._transitions_dropped_total
            await self._write_each(
                "write transitions",
                self._insert_transitions,
                batch,
                lambda row: (
                    f"transition {row.device_id} {row.old_state}->{row.new_state} "
                    f"at {row.at.isoformat()}"
                ),
                self._settle_transitions,
            )
            remaining -= len(batch)

    def _settle_transitions(self, count: int) -> None:
        # Entries dropped at the cap while the batch was being written came off the
        # left end, that is out of this batch: pop only what is still there.
        already_gone = self._transitions_dropped_total - self._dropped_mark
        self._dropped_mark = self._transitions_dropped_total
        for _ in range(max(0, count - already_gone)):
            self._transitions.popleft()
        self.stats.transitions_written += count

    async def _write_devices(self) -> None:
        if not self._devices:
            return
        taken = list(self._devices.values())
        since = self._devices_since
        self._devices = {}
        self._devices_since = None
        self._inflight_devices = len(taken)
        self._inflight_since = since
        settled = 0

        def settle(count: int) -> None:
            nonlocal settled
            settled += count
            self._inflight_devices -= count
            self.stats.devices_written += count

        try:
            for start in range(0, len(taken), ROWS_PER_TRANSACTION):
                chunk = taken[start : start + ROWS_PER_TRANSACTION]
                await self._write_each(
                    "write devices",
                    self._upsert_devices,
                    chunk,
                    lambda row: f"device {row.id} ({row.state})",
                    settle,
                )
                # Keep transitions prompt while a large device batch is written.
                if self._transitions:
                    await self._write_transitions()
        finally:
            # Whatever was not written goes back, unless a newer row for the same
            # device was put meanwhile: the newer row wins (keeping the first first_seen).
            for row in taken[settled:]:
                self._devices[row.id] = superseding(self._devices.get(row.id, row), row)
            if settled < len(taken) and since is not None:
                self._devices_since = min(since, self._devices_since or since)
            self._inflight_devices = 0
            self._inflight_since = None

    async def _write_rollups(self) -> None:
        if not self._rollups:
            return
        taken = list(self._rollups.values())
        since = self._rollups_since
        self._rollups = {}
        self._rollups_since = None
        self._inflight_rollups = len(taken)
        self._inflight_since = since
        settled = 0

        def settle(count: int) -> None:
            nonlocal settled
            settled += count
            self._inflight_rollups -= count
            self.stats.rollups_written += count

        try:
            await self._write_each(
                "write heartbeat rollups",
                self._add_rollups,
                taken,
                lambda row: f"rollup {row.device_id} {row.minute.isoformat()}",
                settle,
            )
        finally:
            # Unwritten figures are added back to whatever accumulated meanwhile.
            for row in taken[settled:]:
                key = (row.device_id, row.minute)
                if key in self._rollups:
                    self._rollups[key].merge(row)
                else:
                    self._rollups[key] = row
            if settled < len(taken) and since is not None:
                self._rollups_since = min(since, self._rollups_since or since)
            self._inflight_rollups = 0
            self._inflight_since = None

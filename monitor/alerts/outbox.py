"""The outbox worker: delivers queued notifications, at least once, with retries.

Each round claims due rows (compare-and-set, see ``repository.claim_due``) and commits
the claim *before* sending, then records the outcome. So:

* a monitor restart resends nothing that was recorded as sent, and drops nothing that
  was pending: pending rows are simply claimed by the next process;
* a process killed between sending and recording leaves its claim to run out
  (``lease``), after which the row is sent again: at-least-once, never at-most-once;
* each channel is a queue: a round claims at most the oldest unfinished delivery of
  each channel, so channels are sent to in parallel and each in order, also while
  one of its deliveries waits out a retry (``repository._head_of_channel``);
* a failed attempt is retried after a capped exponential backoff (``retry.py``) and
  given up after ``max_attempts`` (state ``failed``, visible in
  ``clawbeat alerts deliveries --state failed``, requeued with ``alerts retry``).

Channel URLs are never logged; log lines name the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from device_client.backoff import Backoff
from monitor.alerts import repository
from monitor.alerts.errors import DeliveryFailed
from monitor.alerts.notifier import Notifier
from monitor.alerts.repository import ClaimedDelivery
from monitor.alerts.retry import RetryPolicy
from monitor.store.errors import StoreError


@dataclass(slots=True)
class OutboxStats:
    """Counters since start, for /metrics: read them, don't write them."""

    sent: int = 0
    failed: int = 0
    """Failed attempts (each retry counts)."""
    gave_up: int = 0
    claimed: int = 0
    lost_claims: int = 0
    """Outcomes that could not be recorded because our lease had run out."""


class Outbox:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        *,
        retry: RetryPolicy,
        send_timeout: float = 30.0,
        batch: int = 20,
        concurrency: int = 8,
        idle_poll: float = 5.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._notifier = notifier
        self._retry = retry
        self._send_timeout = send_timeout
        # A claim outlives the longest attempt with room to record the outcome.
        self._lease = send_timeout + 30.0
        self._batch = batch
        self._limit = asyncio.Semaphore(concurrency)
        self._idle_poll = idle_poll
        self._log = logger or logging.getLogger("clawbeat.alerts.outbox")
        self._clock = clock
        # Unique per process: a restarted monitor must not mistake its predecessor's
        # claims for its own.
        self.token = f"outbox-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._closing = False
        self._inflight: asyncio.Future[list[None]] | None = None
        self._db_ok = True
        self.stats = OutboxStats()

    def wake(self) -> None:
        """New deliveries were queued: look at once instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        # While the database is away: retried as the write-behind does, 0.5 s doubling to 15 s.
        backoff = Backoff(base=0.5, cap=15.0, rng=random.Random(), spread=0.2)
        while not self._closing:
            try:
                claimed = await self._claim()
                if not self._db_ok:
                    self._db_ok = True
                    self._log.info("outbox: database reachable again")
                backoff.reset()
            except StoreError as exc:
                if self._db_ok:
                    self._db_ok = False
                    self._log.warning("outbox: cannot claim deliveries (%s); retrying", exc)
                await self._sleep(backoff.next_delay())
                continue
            if claimed:
                # Shielded: when the monitor stops, the task running this loop is
                # cancelled, but a send already under way must finish and be recorded,
                # or it would be sent again after the restart. close() waits for it.
                self._inflight = asyncio.ensure_future(
                    asyncio.gather(*(self._deliver(item) for item in claimed))
                )
                await asyncio.shield(self._inflight)
                continue
            await self._sleep(await self._idle_for())

    async def close(self, within: float = 10.0) -> None:
        """Stop claiming and wait (up to ``within`` seconds) for the deliveries in flight."""
        self._closing = True
        self._wake.set()
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            try:
                async with asyncio.timeout(within):
                    await asyncio.shield(inflight)
            except TimeoutError:
                # Their claims stay; the next monitor sends them when the lease runs out.
                self._log.warning("outbox: stopped with deliveries still in flight")

    # ------------------------------------------------------------------ internals

    async def _claim(self) -> list[ClaimedDelivery]:
        async with self._sessions() as session:
            claimed = await repository.claim_due(
                session, now=self._clock(), token=self.token, lease=self._lease, limit=self._batch
            )
            await session.commit()
        self.stats.claimed += len(claimed)
        return claimed

    async def _idle_for(self) -> float:
        try:
            async with self._sessions() as session:
                due = await repository.next_due(session)
        except StoreError:
            return self._idle_poll
        if due is None:
            return self._idle_poll
        seconds = (due - self._clock()).total_seconds()
        return min(self._idle_poll, max(0.05, seconds))

    async def _sleep(self, seconds: float) -> None:
        if self._closing:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _deliver(self, item: ClaimedDelivery) -> None:
        error: DeliveryFailed | None = None
        async with self._limit:
            if item.url is None:
                error = DeliveryFailed(
                    f"channel {item.channel!r} no longer exists", retryable=False
                )
            else:
                try:
                    async with asyncio.timeout(self._send_timeout + 5):
                        await self._notifier.send(
                            item.url, title=item.title, body=item.body, notify_type=item.notify_type
                        )
                except DeliveryFailed as exc:
                    error = exc
                except TimeoutError:
                    error = DeliveryFailed(f"no answer within {self._send_timeout:.0f}s")
        now = self._clock()
        retry_at: datetime | None = None
        if error is not None:
            self.stats.failed += 1
            if error.retryable and not self._retry.gives_up(item.attempts):
                wait = self._retry.delay(item.attempts, random.uniform(0.8, 1.2))
                retry_at = now + timedelta(seconds=wait)
                self._log.warning(
                    "alert #%d to channel %s failed (attempt %d): %s; retrying in %.1fs",
                    item.alert_id,
                    item.channel,
                    item.attempts,
                    error,
                    wait,
                )
            else:
                self.stats.gave_up += 1
                self._log.error(
                    "alert #%d to channel %s failed (attempt %d): %s; giving up",
                    item.alert_id,
                    item.channel,
                    item.attempts,
                    error,
                )
        try:
            async with self._sessions() as session:
                if error is None:
                    recorded = await repository.mark_sent(
                        session, delivery_id=item.id, token=self.token, now=now
                    )
                else:
                    recorded = await repository.mark_failed(
                        session,
                        delivery_id=item.id,
                        token=self.token,
                        error=str(error),
                        retry_at=retry_at,
                    )
                await session.commit()
        except StoreError as exc:
            # The claim stays; when its lease runs out the row is attempted again.
            self._log.warning("alert delivery %d: outcome not recorded (%s)", item.id, exc)
            return
        if error is None:
            self.stats.sent += 1
            self._log.info(
                "alert #%d (%s) delivered to channel %s", item.alert_id, item.event, item.channel
            )
        if not recorded:
            self.stats.lost_claims += 1
            self._log.warning(
                "alert delivery %d: claim expired before its outcome was recorded", item.id
            )

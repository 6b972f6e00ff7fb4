"""The shell around scoring: feeds the tracker, scores on a schedule, retrains the model.

The event loop only records signals (a few scalar writes per heartbeat); every
``cycle`` seconds a worker thread copies the signal columns, scores the fleet and
swaps in a new :class:`RiskReport`, which the API, the dashboard, the Prometheus gauge
and the ``at-risk`` alert rule read. Nothing heavier than that copy happens on the loop.

Learning from the fleet's own history: each ``sample_every`` seconds a random subset of
the scored rows is kept (bounded, ``max_rows``), and the transitions that start or end
an outage are kept as labels (``labels.py``). Once the kept history spans
``min_history`` and holds at least ``min_outages`` devices that dropped off, a model is
trained in a worker thread, then retrained every ``retrain_every``. Until then the
transparent rules decide, and :attr:`RiskScorer.mode` says so. The history lives in
memory: after a restart the monitor scores with rules until it has learned again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from device_client.protocol import Heartbeat
from monitor.liveness.states import State, Transition
from monitor.risk.evaluate import device_days
from monitor.risk.features import compute
from monitor.risk.labels import HORIZON_24H, outage_starts, time_to_next_outage
from monitor.risk.model import RiskModel, train
from monitor.risk.scoring import RiskMode, RiskReport, empty_report, score_frame
from monitor.risk.signals import SignalTracker

log = logging.getLogger("clawbeat.risk")

TARGET_RATE: Final = 0.005
_LABEL_STATES: Final = frozenset({State.STALE, State.OFFLINE, State.LOST})


@dataclass(frozen=True, slots=True)
class RiskOptions:
    cycle: float = 60.0
    sample_every: float = 300.0
    sample_rows: int = 2_000
    max_rows: int = 400_000
    min_history: float = 2 * 86_400.0
    min_outages: int = 20
    retrain_every: float = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class _Chunk:
    x: npt.NDArray[np.float32]
    ids: list[str]
    wall: float


class RiskScorer:
    def __init__(self, options: RiskOptions | None = None, *, seed: int = 0) -> None:
        self.options = options or RiskOptions()
        self.tracker = SignalTracker()
        self.model: RiskModel | None = None
        self.trained_at: float | None = None
        self.report: RiskReport = empty_report(RiskMode.RULES, time.time())
        self.cycles = 0
        self._rng = random.Random(seed)
        self._chunks: deque[_Chunk] = deque()
        self._rows = 0
        self._last_sample = -np.inf
        self._labels: deque[Transition] = deque(maxlen=500_000)
        self._training: asyncio.Task[None] | None = None
        self._blind = False

    @property
    def mode(self) -> RiskMode:
        return RiskMode.RULES if self.model is None else RiskMode.MODEL

    # ---------------------------------------------------------------- loop side

    def heartbeat(
        self,
        device_id: str,
        hb: Heartbeat,
        now: float,
        *,
        interval: float,
        latency: float | None,
        device_class: str | None = None,
    ) -> None:
        self.tracker.heartbeat(
            device_id, hb, now, interval=interval, latency=latency, device_class=device_class
        )

    def blind(self) -> None:
        """The monitor lost the broker: no scoring (every device would look silent)."""
        self._blind = True

    def seeing(self, now: float) -> None:
        """The monitor sees again: score, counting silences from ``now``."""
        self._blind = False
        self.tracker.resumed(now)

    def forget(self, device_id: str) -> None:
        self.tracker.forget(device_id)

    def knows(self, device_id: str) -> bool:
        return device_id in self.tracker

    def set_class(self, device_id: str, device_class: str) -> None:
        self.tracker.set_class(device_id, device_class)

    def transition(self, tr: Transition, now: float) -> None:
        self.tracker.transition(tr, now)
        if tr.new in _LABEL_STATES or tr.old in _LABEL_STATES:
            self._labels.append(tr)

    async def run(self) -> None:
        """Score every ``cycle`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.options.cycle)
            if not self._blind:
                await self.score_now()

    async def score_now(self) -> RiskReport:
        now, wall = time.monotonic(), time.time()
        report = await asyncio.to_thread(self._score, now, wall)
        self.report = report
        self.cycles += 1
        if self._training is None and self._due(wall):
            self._training = asyncio.create_task(self._retrain(wall), name="risk-train")
        return report

    def score_at(self, now: float, wall: float) -> RiskReport:
        """One pass and, when due, a training, synchronously (the replay drives this)."""
        self.report = self._score(now, wall)
        self.cycles += 1
        if self._due(wall):
            self._install(self.train_from_history(wall), wall)
        return self.report

    async def close(self) -> None:
        if self._training is not None:
            self._training.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._training

    # -------------------------------------------------------------- thread side

    def _score(self, now: float, wall: float) -> RiskReport:
        frame = compute(self.tracker, now)
        report = score_frame(frame, self.model, wall)
        if wall - self._last_sample >= self.options.sample_every and frame.device_ids:
            self._last_sample = wall
            n = len(frame.device_ids)
            take = sorted(self._rng.sample(range(n), min(n, self.options.sample_rows)))
            self._chunks.append(
                _Chunk(frame.x[take].astype(np.float32), [frame.device_ids[i] for i in take], wall)
            )
            self._rows += len(take)
            while self._rows > self.options.max_rows and len(self._chunks) > 1:
                self._rows -= len(self._chunks.popleft().ids)
        return report

    def _due(self, wall: float) -> bool:
        if not self._chunks:
            return False
        if wall - self._chunks[0].wall < self.options.min_history:
            return False
        return self.trained_at is None or wall - self.trained_at >= self.options.retrain_every

    async def _retrain(self, wall: float) -> None:
        try:
            self._install(await asyncio.to_thread(self.train_from_history, wall), wall)
        except Exception:
            # A failed training keeps the previous mode; it is retried on schedule.
            log.exception("risk model training failed")
            self.trained_at = wall
        finally:
            self._training = None

    def _install(self, model: RiskModel | None, wall: float) -> None:
        # Tried now whatever came of it: the next attempt waits for retrain_every.
        self.trained_at = wall
        if model is None:
            return
        self.model = model
        log.info(
            "risk model trained on %d samples (%d positive for 24 h): thresholds "
            "1 h %.3f, 24 h %.3f",
            model.samples,
            model.positives_24h,
            model.threshold_1h,
            model.threshold_24h,
        )

    def train_from_history(self, wall: float) -> RiskModel | None:
        """Train on the kept samples whose 24 h label is complete; None if too few outages."""
        chunks = [c for c in list(self._chunks) if c.wall <= wall - HORIZON_24H]
        if not chunks:
            return None
        outages = outage_starts(list(self._labels))
        ids = [d for c in chunks for d in c.ids]
        failed = {d for d in set(ids) if d in outages}
        if len(failed) < self.options.min_outages:
            log.info(
                "risk model not trained yet: %d devices dropped off in the kept history, %d needed",
                len(failed),
                self.options.min_outages,
            )
            return None
        x = np.vstack([c.x for c in chunks]).astype(np.float64)
        times = np.concatenate([np.full(len(c.ids), c.wall) for c in chunks])
        to_outage = time_to_next_outage(ids, times, outages)
        healthy = np.fromiter((d not in outages for d in ids), dtype=np.bool_, count=len(ids))
        return train(
            x,
            device_ids=ids,
            to_outage=to_outage,
            healthy=healthy,
            day_keys=device_days(ids, times, float(times.min())),
            target_rate=TARGET_RATE,
        )

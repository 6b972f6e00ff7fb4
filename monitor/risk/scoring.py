"""One scoring pass over the fleet: features, rules, the model if there is one, levels.

Pure and synchronous: the shell (``scorer.py``) runs it in a worker thread. The result
keeps one row per scored device in flat arrays (a million ``DeviceRisk`` objects per
cycle would cost more than the scoring itself); :meth:`RiskReport.get` builds one on
demand, and reasons in words are made only for flagged devices.

Levels:

* rules mode: ``elevated`` when the strongest rule reaches ``RULES_THRESHOLD``,
  ``high`` at twice that;
* model mode: ``high`` when the 1 h probability reaches its threshold, ``elevated``
  when the 24 h one does (thresholds chosen in training, ``model.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from monitor.risk.features import FeatureFrame
from monitor.risk.model import RiskModel
from monitor.risk.rules import RULES_THRESHOLD, reasons, scores, strengths

MODEL_FALLBACK_REASON: Final = "heartbeat pattern like devices that later dropped off"


class RiskLevel(StrEnum):
    LOW = "low"
    ELEVATED = "elevated"
    HIGH = "high"


class RiskMode(StrEnum):
    RULES = "rules"
    MODEL = "model"


_LEVELS: Final = (RiskLevel.LOW, RiskLevel.ELEVATED, RiskLevel.HIGH)


@dataclass(frozen=True, slots=True)
class DeviceRisk:
    level: RiskLevel
    score: float
    """Rules mode: the strongest rule's strength (1 = at its limit). Model mode: the
    1 h probability over its threshold, or the 24 h one over its own, whichever is
    larger (>= 1 means flagged)."""
    within_1h: float | None
    within_24h: float | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RiskReport:
    mode: RiskMode
    scored_at: float
    """Wall clock (UTC epoch seconds) of the pass."""
    cpu_seconds: float
    device_ids: list[str]
    level: npt.NDArray[np.int8]
    score: npt.NDArray[np.float64]
    within_1h: npt.NDArray[np.float64] | None
    within_24h: npt.NDArray[np.float64] | None
    reasons: dict[str, tuple[str, ...]]
    index: dict[str, int] = field(repr=False)

    def get(self, device_id: str) -> DeviceRisk | None:
        row = self.index.get(device_id)
        if row is None:
            return None
        return DeviceRisk(
            level=_LEVELS[int(self.level[row])],
            score=round(float(self.score[row]), 3),
            within_1h=None if self.within_1h is None else round(float(self.within_1h[row]), 4),
            within_24h=None if self.within_24h is None else round(float(self.within_24h[row]), 4),
            reasons=self.reasons.get(device_id, ()),
        )

    def counts(self) -> dict[RiskLevel, int]:
        counted = np.bincount(self.level, minlength=len(_LEVELS))
        return {lvl: int(counted[i]) for i, lvl in enumerate(_LEVELS)}

    def at_risk(self) -> list[tuple[str, DeviceRisk]]:
        """Flagged devices, highest score first."""
        rows = np.flatnonzero(self.level > 0)
        rows = rows[np.argsort(-self.score[rows], kind="stable")]
        out = []
        for row in rows:
            device_id = self.device_ids[row]
            risk = self.get(device_id)
            assert risk is not None
            out.append((device_id, risk))
        return out


def empty_report(mode: RiskMode, wall: float) -> RiskReport:
    return RiskReport(
        mode=mode,
        scored_at=wall,
        cpu_seconds=0.0,
        device_ids=[],
        level=np.zeros(0, dtype=np.int8),
        score=np.zeros(0),
        within_1h=None,
        within_24h=None,
        reasons={},
        index={},
    )


def score_frame(frame: FeatureFrame, model: RiskModel | None, wall: float) -> RiskReport:
    """Score every device of ``frame``; ``model`` None means rules only."""
    started = time.thread_time()
    strength = strengths(frame)
    p1: npt.NDArray[np.float64] | None = None
    p24: npt.NDArray[np.float64] | None = None
    if model is None:
        mode = RiskMode.RULES
        score = scores(strength)
        level = np.where(
            score >= 2 * RULES_THRESHOLD, 2, np.where(score >= RULES_THRESHOLD, 1, 0)
        ).astype(np.int8)
    else:
        mode = RiskMode.MODEL
        p1, p24 = model.predict(frame.x)
        r1 = p1 / max(model.threshold_1h, 1e-9)
        r24 = p24 / max(model.threshold_24h, 1e-9)
        score = np.maximum(r1, r24)
        level = np.where(r1 >= 1.0, 2, np.where(r24 >= 1.0, 1, 0)).astype(np.int8)
    words: dict[str, tuple[str, ...]] = {}
    for row in np.flatnonzero(level > 0):
        said = reasons(frame, strength, int(row))
        if not said and mode is RiskMode.MODEL:
            said = [MODEL_FALLBACK_REASON]
        words[frame.device_ids[row]] = tuple(said)
    ids = frame.device_ids
    return RiskReport(
        mode=mode,
        scored_at=wall,
        cpu_seconds=time.thread_time() - started,
        device_ids=ids,
        level=level,
        score=score,
        within_1h=p1,
        within_24h=p24,
        reasons=words,
        index={d: i for i, d in enumerate(ids)},
    )

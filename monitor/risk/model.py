"""The learned risk model: gradient-boosted trees on the features, one per horizon.

scikit-learn's ``HistGradientBoostingClassifier``: it handles missing features (a
device without a battery metric) natively, trains on hundreds of thousands of rows in
seconds, and predicts a million rows in about a second. Nothing is downloaded: the
model is trained on the fleet's own history (or a replayed one) by :func:`train`.

Each horizon (1 h, 24 h) gets its own classifier and its own flag threshold, chosen on
the training data so that healthy devices are flagged on at most ``target_rate`` of
their days (``thresholds.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier

Array = npt.NDArray[np.float64]

MAX_NEGATIVES: Final = 250_000
"""Negatives kept for training (weighted back up): they outnumber positives ~50 to 1."""


@dataclass(frozen=True, slots=True)
class RiskModel:
    within_1h: HistGradientBoostingClassifier
    within_24h: HistGradientBoostingClassifier
    threshold_1h: float
    threshold_24h: float
    samples: int
    positives_24h: int

    def predict(self, x: Array) -> tuple[Array, Array]:
        """Probabilities of an outage within 1 h and within 24 h, one per row."""
        if len(x) == 0:
            return np.empty(0), np.empty(0)
        p1: Array = self.within_1h.predict_proba(x)[:, 1]
        p24: Array = self.within_24h.predict_proba(x)[:, 1]
        return p1, p24


def fit_classifier(
    x: Array, y: npt.NDArray[np.bool_], *, seed: int = 0
) -> HistGradientBoostingClassifier:
    """One classifier for one horizon; negatives subsampled and weighted back up."""
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(y)
    neg = np.flatnonzero(~y)
    weight_neg = 1.0
    if len(neg) > MAX_NEGATIVES:
        weight_neg = len(neg) / MAX_NEGATIVES
        neg = rng.choice(neg, MAX_NEGATIVES, replace=False)
    rows = np.concatenate([pos, neg])
    weights = np.concatenate([np.ones(len(pos)), np.full(len(neg), weight_neg)])
    clf = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    clf.fit(x[rows], y[rows], sample_weight=weights)
    return clf

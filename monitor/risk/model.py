"""The learned risk model: gradient-boosted trees on the features, one per horizon.

scikit-learn's ``HistGradientBoostingClassifier``: it handles missing features (a
device without a battery metric) natively, trains on hundreds of thousands of rows in
seconds, and predicts a million rows in about a second. Nothing is downloaded: the
model is trained on the fleet's own history (or a replayed one) by :func:`train`.

Each horizon (1 h, 24 h) gets its own classifier and its own flag threshold, chosen on
the training data so that healthy devices are flagged on at most ``target_rate`` of
their days (:func:`train`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from monitor.risk.evaluate import day_threshold
from monitor.risk.labels import HORIZON_1H, HORIZON_24H

if TYPE_CHECKING:
    # Imported where a model is fitted: scikit-learn takes a second and ~100 MB to load,
    # which the CLI commands and a monitor still scoring with rules need not pay.
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
        with one_thread():
            return _proba(self.within_1h, x), _proba(self.within_24h, x)


def train(
    x: Array,
    *,
    device_ids: Sequence[str],
    to_outage: Array,
    healthy: npt.NDArray[np.bool_],
    day_keys: npt.NDArray[np.int64],
    target_rate: float,
    seed: int = 0,
) -> RiskModel:
    """Fit both horizons on labelled samples; thresholds from out-of-fold predictions.

    The thresholds must not come from in-sample predictions (the trees remember the
    training devices, so healthy ones would look healthier than new ones will): the
    devices are split in two folds, each fold is predicted by a model fitted on the
    other, and each horizon's threshold is set so that at most ``target_rate`` of
    healthy device-days would have been flagged. The models kept are fitted on all.
    """
    y1 = to_outage <= HORIZON_1H
    y24 = to_outage <= HORIZON_24H
    names = sorted(set(device_ids))
    fold_of = {name: i % 2 for i, name in enumerate(names)}
    fold = np.fromiter((fold_of[d] for d in device_ids), dtype=np.int64, count=len(device_ids))
    p1 = np.zeros(len(device_ids))
    p24 = np.zeros(len(device_ids))
    for k in (0, 1):
        fit = fold != k
        test = ~fit
        if not test.any() or not fit.any():
            continue
        p1[test] = _proba(fit_classifier(x[fit], y1[fit], seed=seed), x[test])
        p24[test] = _proba(fit_classifier(x[fit], y24[fit], seed=seed), x[test])
    return RiskModel(
        within_1h=fit_classifier(x, y1, seed=seed),
        within_24h=fit_classifier(x, y24, seed=seed),
        threshold_1h=day_threshold(p1, healthy, day_keys, target_rate),
        threshold_24h=day_threshold(p24, healthy, day_keys, target_rate),
        samples=len(device_ids),
        positives_24h=int(y24.sum()),
    )


def _proba(clf: HistGradientBoostingClassifier, x: Array) -> Array:
    if len(clf.classes_) < 2:  # only one class in the fold: nothing to tell apart
        return np.zeros(len(x))
    result: Array = clf.predict_proba(x)[:, 1]
    return result


def fit_classifier(
    x: Array, y: npt.NDArray[np.bool_], *, seed: int = 0
) -> HistGradientBoostingClassifier:
    """One classifier for one horizon; negatives subsampled and weighted back up."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415 -- see top

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
        max_iter=60,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    with one_thread():
        clf.fit(x[rows], y[rows], sample_weight=weights)
    return clf


def one_thread() -> threadpool_limits:
    """scikit-learn's OpenMP pool limited to one thread for a fit or a prediction.

    The monitor's event loop must keep a core while a worker thread scores or trains,
    and on a busy machine OpenMP's spinning worker threads make a fit many times slower
    than one thread would be.
    """
    return threadpool_limits(limits=1, user_api="openmp")

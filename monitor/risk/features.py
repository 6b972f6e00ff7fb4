"""From tracked signals to one feature row per device, for a whole fleet at once.

Everything is vectorised over devices (numpy): scoring a million devices is a few dozen
array operations, not a million Python calls. A feature is either relative to the
device's own history (short against long time scale: ``*_trend``, ``*_drift``) or to
its class's baseline (the median over the class's devices at scoring time:
``*_vs_class``), or a level that means the same on every device (battery %, hours left).

Missing inputs (a device that sends no battery metric, no ``ts``) are NaN, which the
gradient-boosted model handles natively and the rules read as "no evidence".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from monitor.risk.signals import (
    COLUMNS,
    COUNTER_TAU,
    TAU_LONG,
    TAU_METRIC_FAST,
    TAU_METRIC_SLOW,
    TAU_SHORT,
    SignalTracker,
)

Array = npt.NDArray[np.float64]

FEATURES: Final = (
    "gap_short",  # mean gap over the last hour, in intervals
    "gap_trend",  # last hour's mean gap over the device's own 24 h mean
    "jitter_short",  # mean |gap - recent mean gap| over the last hour, in intervals
    "jitter_trend",  # ... over its own 24 h value
    "jitter_vs_class",  # ... over its class's median 24 h value
    "cusum",  # one-sided CUSUM of the gap's excess over the interval
    "missed_1h",
    "missed_24h",
    "missed_trend",
    "reconnects_1h",
    "reconnects_24h",
    "reconnects_trend",
    "reconnects_vs_class",
    "reboots_6h",
    "reboots_24h",
    "offline_1h",
    "offline_24h",
    "late_1h",
    "late_24h",
    "latency_drift",  # seconds: last hour's latency minus its own 24 h latency
    "latency_vs_class",  # seconds: last hour's latency minus the class median
    "battery",  # percent
    "battery_slope",  # percent per hour (negative: draining)
    "battery_hours_left",
    "rssi",  # dBm
    "rssi_drift",  # dB against its own 24 h mean
    "rssi_vs_class",  # dB against the class median
    "temp_drift",
    "temp_vs_class",
    "mem_slope",  # fraction of its own recent level per hour
    "mem_hours_left",
    "silence",  # seconds since the last heartbeat, in intervals
    "history_h",  # hours of history behind these numbers
)
F: Final = {name: i for i, name in enumerate(FEATURES)}
HOURS_LEFT_CAP: Final = 1000.0
_SLOPE_HOURS: Final = (TAU_METRIC_SLOW - TAU_METRIC_FAST) / 3600.0


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """Features of the scoreable devices: ``x[i]`` belongs to ``device_ids[i]``."""

    device_ids: list[str]
    device_classes: list[str]
    x: Array
    now: float

    def column(self, name: str) -> Array:
        return self.x[:, F[name]]


def copy_columns(tracker: SignalTracker) -> tuple[dict[str, Array], list[str], list[str]]:
    """Copy the tracker's columns into numpy (under its lock: arrays cannot grow meanwhile)."""
    with tracker.lock:
        cols = {name: np.array(tracker.column(name), dtype=np.float64) for name in COLUMNS}
        ids = list(tracker.device_ids)
        classes = list(tracker.device_classes)
    return cols, ids, classes


def compute(tracker: SignalTracker, now: float) -> FeatureFrame:
    """Features at ``now`` for every tracked device that is up and has beaten."""
    cols, ids, classes = copy_columns(tracker)
    return compute_from_columns(cols, ids, classes, now, seeing_since=tracker.seeing_since)


def compute_from_columns(
    cols: dict[str, Array],
    ids: list[str],
    classes: list[str],
    now: float,
    *,
    seeing_since: float = -np.inf,
) -> FeatureFrame:
    keep = (cols["up"] == 1.0) & (cols["beats"] >= 1.0)
    index = np.flatnonzero(keep)
    c = {name: col[index] for name, col in cols.items()}
    kept_ids = [ids[i] for i in index]
    kept_classes = [classes[i] for i in index]
    n = len(index)
    x = np.full((n, len(FEATURES)), np.nan, dtype=np.float64)
    if n == 0:
        return FeatureFrame(kept_ids, kept_classes, x, now)

    age = np.maximum(now - c["upd_t"], 0.0)
    decayed = {name: c[name] * np.exp(-age / tau) for name, tau in COUNTER_TAU.items()}
    codes = _class_codes(kept_classes)
    short_over_long = TAU_SHORT / TAU_LONG

    def put(name: str, value: Array) -> None:
        x[:, F[name]] = value

    with np.errstate(divide="ignore", invalid="ignore"):
        put("gap_short", c["r_s"])
        put("gap_trend", c["r_s"] / c["r_l"])
        put("jitter_short", c["j_s"])
        put("jitter_trend", (c["j_s"] + 0.005) / (c["j_l"] + 0.005))
        put("jitter_vs_class", (c["j_s"] + 0.005) / (_class_median(c["j_l"], codes) + 0.005))
        put("cusum", c["cusum"])
        put("missed_1h", decayed["missed_s"])
        put("missed_24h", decayed["missed_l"])
        put(
            "missed_trend",
            (decayed["missed_s"] + 0.1) / (decayed["missed_l"] * short_over_long + 0.1),
        )
        put("reconnects_1h", decayed["reconn_s"])
        put("reconnects_24h", decayed["reconn_l"])
        put(
            "reconnects_trend",
            (decayed["reconn_s"] + 0.1) / (decayed["reconn_l"] * short_over_long + 0.1),
        )
        put(
            "reconnects_vs_class",
            (decayed["reconn_s"] + 0.1)
            / (_class_mean(decayed["reconn_l"], codes) * short_over_long + 0.1),
        )
        put("reboots_6h", decayed["reboot_s"])
        put("reboots_24h", decayed["reboot_l"])
        put("offline_1h", decayed["offline_s"])
        put("offline_24h", decayed["offline_l"])
        put("late_1h", decayed["late_s"])
        put("late_24h", decayed["late_l"])
        put("latency_drift", c["lat_s"] - c["lat_l"])
        put("latency_vs_class", c["lat_s"] - _class_median(c["lat_l"], codes))
        bat = c["bat_f"]
        bat_slope = (c["bat_f"] - c["bat_w"]) / _SLOPE_HOURS
        put("battery", bat)
        put("battery_slope", bat_slope)
        put("battery_hours_left", _hours_left(bat, bat_slope))
        put("rssi", c["rssi_f"])
        put("rssi_drift", c["rssi_f"] - c["rssi_l"])
        put("rssi_vs_class", c["rssi_f"] - _class_median(c["rssi_l"], codes))
        put("temp_drift", c["temp_f"] - c["temp_l"])
        put("temp_vs_class", c["temp_f"] - _class_median(c["temp_l"], codes))
        mem_slope_abs = (c["mem_f"] - c["mem_w"]) / _SLOPE_HOURS
        put("mem_slope", mem_slope_abs / c["mem_w"])
        put("mem_hours_left", _hours_left(c["mem_f"], mem_slope_abs))
        # Silence counts from when the monitor could last hear the device.
        put("silence", (now - np.maximum(c["last_t"], seeing_since)) / c["interval"])
        put("history_h", (now - c["first_t"]) / 3600.0)
    x[np.isinf(x)] = np.nan
    return FeatureFrame(kept_ids, kept_classes, x, now)


def _hours_left(level: Array, slope_per_h: Array) -> Array:
    """Hours until ``level`` reaches 0 at the current slope; the cap when not falling."""
    falling = slope_per_h < 0
    left = np.where(falling, level / np.where(falling, -slope_per_h, 1.0), HOURS_LEFT_CAP)
    left = np.minimum(left, HOURS_LEFT_CAP)
    left[np.isnan(level)] = np.nan
    return left


def _class_codes(classes: list[str]) -> npt.NDArray[np.intp]:
    names: dict[str, int] = {}
    return np.fromiter(
        (names.setdefault(name, len(names)) for name in classes), dtype=np.intp, count=len(classes)
    )


def _class_median(values: Array, codes: npt.NDArray[np.intp]) -> Array:
    """Each device's class median of ``values`` (NaNs ignored)."""
    out = np.full(len(values), np.nan)
    if len(values) == 0:
        return out
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN class has no baseline
        for group in np.split(order, bounds):
            out[group] = np.nanmedian(values[group])
    return out


def _class_mean(values: Array, codes: npt.NDArray[np.intp]) -> Array:
    counts = np.bincount(codes)
    sums = np.bincount(codes, weights=np.nan_to_num(values))
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / counts
    result: Array = means[codes]
    return result

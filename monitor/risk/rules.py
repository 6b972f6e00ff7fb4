"""Transparent rules: each signal's strength against a stated limit, and why in words.

The statistical baseline beside the learned model, and what the monitor uses until it
has enough history to train one. Each rule reads a few features (``features.py``) and
gives a *strength*: 1.0 means "at its limit", 2.0 "twice its limit". A device's rules
score is its strongest rule; it is flagged when that reaches ``RULES_THRESHOLD``: 2, a
signal at twice its limit, chosen on a simulated training fleet (at 1, more than 1 % of
healthy device-days would be flagged; ``docs/prediction.md``). The same strengths
rank the reasons given for a model's verdict: the model says *whether*, the signals
furthest past their limits say *why*.

Limits (all in the device's own terms or its class's):

===================  ==================================================================
reconnects           3 in the last hour, and 5x its class's usual rate
reboots              2 in the last 6 h (uptime went back)
battery              below 15 %, or empty within 24 h at the current slope
memory               free memory exhausted within 12 h at the current slope
slow-down            CUSUM of the gap's excess over the interval at 8 intervals
jitter               5x its class's usual jitter (and at least 5 % of the interval)
missed beats         4 in the last hour
signal               RSSI 10 dB below its own 24 h mean
latency              1 s above its own 24 h mean
silence              no heartbeat for 2.5 intervals
connection losses    2 wills in the last hour
===================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from monitor.risk.features import FEATURES, FeatureFrame

Array = npt.NDArray[np.float64]

RULES_THRESHOLD: Final = 2.0
"""A device whose strongest rule reaches this is flagged: the training fleet alone chose
2.07 for at most 1 % of healthy device-days (docs/prediction.md)."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    strength: Callable[[FeatureFrame], Array]
    words: Callable[[dict[str, float]], str]


def _f(frame: FeatureFrame, name: str) -> Array:
    return frame.column(name)


def _plural(n: float, one: str, many: str) -> str:
    count = round(n)
    return f"{count} {one if count == 1 else many}"


def _within(hours: float) -> str:
    return "within the hour" if hours < 1.0 else f"in about {hours:.0f} h"


RULES: Final = (
    Rule(
        "reconnects",
        lambda fr: np.minimum(_f(fr, "reconnects_1h") / 3.0, _f(fr, "reconnects_vs_class") / 5.0),
        lambda v: (
            f"{_plural(v['reconnects_1h'], 'reconnect', 'reconnects')} in the last hour "
            f"({v['reconnects_vs_class']:.0f}x its class)"
        ),
    ),
    Rule(
        "reboots",
        lambda fr: _f(fr, "reboots_6h") / 2.0,
        lambda v: f"rebooted {_plural(v['reboots_6h'], 'time', 'times')} in the last 6 h",
    ),
    Rule(
        "battery",
        lambda fr: np.maximum(15.0 / _f(fr, "battery"), 24.0 / _f(fr, "battery_hours_left")),
        lambda v: (
            f"battery {v['battery']:.0f} %, "
            + (
                f"falling {-v['battery_slope']:.1f} %/h (empty {_within(v['battery_hours_left'])})"
                if v["battery_slope"] < -0.05
                else "low"
            )
        ),
    ),
    Rule(
        "memory",
        lambda fr: np.where(_f(fr, "mem_slope") < -0.01, 12.0 / _f(fr, "mem_hours_left"), 0.0),
        lambda v: (
            f"free memory falling {-v['mem_slope'] * 100:.0f} %/h "
            f"(exhausted {_within(v['mem_hours_left'])})"
        ),
    ),
    Rule(
        "slowdown",
        lambda fr: _f(fr, "cusum") / 8.0,
        lambda v: (
            f"heartbeats {max(v['gap_short'] - 1.0, 0.0) * 100:.0f} % slower than the interval "
            f"(CUSUM {v['cusum']:.0f})"
        ),
    ),
    Rule(
        "jitter",
        lambda fr: np.where(_f(fr, "jitter_short") >= 0.05, _f(fr, "jitter_vs_class") / 5.0, 0.0),
        lambda v: f"jitter {v['jitter_vs_class']:.0f}x its class",
    ),
    Rule(
        "missed",
        lambda fr: _f(fr, "missed_1h") / 4.0,
        lambda v: f"{_plural(v['missed_1h'], 'heartbeat', 'heartbeats')} missed in the last hour",
    ),
    Rule(
        "signal",
        lambda fr: -_f(fr, "rssi_drift") / 10.0,
        lambda v: f"signal {v['rssi']:.0f} dBm, {-v['rssi_drift']:.0f} dB below its usual",
    ),
    Rule(
        "latency",
        lambda fr: _f(fr, "latency_drift") / 1.0,
        lambda v: f"latency {v['latency_drift']:.1f} s above its usual",
    ),
    Rule(
        "silence",
        lambda fr: (_f(fr, "silence") - 1.0) / 1.5,
        lambda v: f"no heartbeat for {v['silence']:.1f} intervals",
    ),
    Rule(
        "connection-losses",
        lambda fr: _f(fr, "offline_1h") / 2.0,
        lambda v: (
            f"{_plural(v['offline_1h'], 'connection loss', 'connection losses')} in the last hour"
        ),
    ),
)


def strengths(frame: FeatureFrame) -> Array:
    """Strength of every rule for every device (NaN evidence counts as 0)."""
    n = len(frame.device_ids)
    out = np.zeros((n, len(RULES)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, rule in enumerate(RULES):
            s = rule.strength(frame)
            out[:, j] = np.clip(np.nan_to_num(s, nan=0.0, posinf=100.0, neginf=0.0), 0.0, 100.0)
    return out


def scores(strength: Array) -> Array:
    """A device's rules score: its strongest rule."""
    if strength.shape[1] == 0 or strength.shape[0] == 0:
        return np.zeros(strength.shape[0])
    result: Array = strength.max(axis=1)
    return result


def reasons(frame: FeatureFrame, strength: Array, row: int, *, limit: int = 3) -> list[str]:
    """The ``limit`` strongest signals of one device, in words (those at least half-way)."""
    order = np.argsort(-strength[row])
    values = {name: float(frame.x[row, i]) for i, name in enumerate(FEATURES)}
    out = []
    for j in order[:limit]:
        if strength[row, j] < 0.5:
            break
        out.append(RULES[j].words(values))
    return out

"""Measured figures: how early degrading devices are flagged, how often healthy ones are.

Definitions (``docs/prediction.md`` quotes them):

* A device is *flagged* at a scoring cycle when its risk level is not ``low``.
* A failing device is *caught* when it is flagged at the last scoring cycle at least
  ``LEAD`` (30 min) before its first outage (``labels.py``): the warning was standing
  half an hour before the stale, offline or lost transition, not merely once earlier.
* The false-alarm rate is the share of healthy device-days with at least one flag.

Thresholds are chosen on the *training* fleet only (:func:`day_threshold`), then the
figures are measured on a separate evaluation fleet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from device_client.degradation import DEGRADING, DevicePlan, Profile

Array = npt.NDArray[np.float64]

LEAD: Final = 1800.0
DAY: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class Figures:
    caught: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per profile: (caught, failing devices)."""
    healthy_days: int = 0
    healthy_flagged_days: int = 0
    median_lead_h: float = float("nan")

    @property
    def degrading_caught(self) -> tuple[int, int]:
        hit = sum(c for p, (c, _) in self.caught.items() if Profile(p) in DEGRADING)
        total = sum(n for p, (_, n) in self.caught.items() if Profile(p) in DEGRADING)
        return hit, total

    @property
    def recall(self) -> float:
        hit, total = self.degrading_caught
        return hit / total if total else float("nan")

    @property
    def false_alarm_rate(self) -> float:
        return self.healthy_flagged_days / self.healthy_days if self.healthy_days else float("nan")


def device_days(device_ids: Sequence[str], times: Array, start: float) -> npt.NDArray[np.int64]:
    """A key per sample naming its (device, day) pair."""
    names: dict[str, int] = {}
    codes = np.fromiter((names.setdefault(d, len(names)) for d in device_ids), dtype=np.int64)
    days = ((times - start) // DAY).astype(np.int64)
    result: npt.NDArray[np.int64] = codes * 10_000 + days
    return result


def day_threshold(
    score: Array, healthy: npt.NDArray[np.bool_], keys: npt.NDArray[np.int64], target_rate: float
) -> float:
    """The lowest threshold flagging at most ``target_rate`` of healthy device-days.

    A device-day is flagged when its highest score reaches the threshold, so the
    threshold is just above the (1 - target_rate) quantile of healthy daily maxima.
    """
    k = keys[healthy]
    s = score[healthy]
    if len(s) == 0:
        return float("inf")
    order = np.argsort(k, kind="stable")
    k, s = k[order], s[order]
    bounds = np.flatnonzero(np.diff(k)) + 1
    daily = np.maximum.reduceat(s, np.concatenate([[0], bounds]))
    q = float(np.quantile(daily, 1.0 - target_rate, method="higher"))
    return float(np.nextafter(q, np.inf))


def measure(
    plans: Sequence[DevicePlan],
    *,
    plan_ids: Sequence[str],
    outages: Mapping[str, list[float]],
    device_ids: Sequence[str],
    times: Array,
    flagged: npt.NDArray[np.bool_],
    start: float,
) -> Figures:
    """The figures for one evaluation fleet, given which samples were flagged."""
    by_device: dict[str, list[int]] = {}
    for i, d in enumerate(device_ids):
        by_device.setdefault(d, []).append(i)
    caught: dict[str, list[int]] = {}
    leads: list[float] = []
    healthy_days = 0
    healthy_flagged = 0
    for plan, name in zip(plans, plan_ids, strict=True):
        rows = np.asarray(by_device.get(name, []), dtype=np.int64)
        if plan.profile is Profile.HEALTHY:
            if len(rows) == 0:
                continue
            days = ((times[rows] - start) // DAY).astype(np.int64)
            for day in np.unique(days):
                healthy_days += 1
                healthy_flagged += bool(flagged[rows[days == day]].any())
            continue
        starts = outages.get(name)
        if not starts or len(rows) == 0:
            continue  # did not fail within the replay
        t_out = starts[0]
        tally = caught.setdefault(plan.profile.value, [0, 0])
        tally[1] += 1
        before = rows[times[rows] <= t_out - LEAD]
        if len(before) == 0:
            continue
        last = before[np.argmax(times[before])]
        if flagged[last]:
            tally[0] += 1
            # Lead time: from the start of the flag run standing at the cycle 30 min before.
            ordered = before[np.argsort(times[before])]
            run_start = times[last]
            for i in ordered[::-1]:
                if not flagged[i]:
                    break
                run_start = times[i]
            leads.append((t_out - run_start) / 3600.0)
    return Figures(
        caught={p: (c[0], c[1]) for p, c in sorted(caught.items())},
        healthy_days=healthy_days,
        healthy_flagged_days=healthy_flagged,
        median_lead_h=float(np.median(leads)) if leads else float("nan"),
    )

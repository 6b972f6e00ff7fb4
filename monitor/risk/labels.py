"""Labels from the transitions table: when did a device drop off, and for how long.

An *outage* starts when a device that was up (unknown, online, late) goes stale,
offline with its connection lost, or lost, and does not come back online within
``MIN_OUTAGE``. Short drops are left out on purpose: a reboot or a reconnect that is
back within minutes is a symptom the signals count, not the failure to predict. A
planned shutdown is not an outage either.

A sample taken at ``t`` is positive for horizon ``h`` when the device's next outage
starts in ``(t, t + h]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from monitor.liveness.states import Reason, State, Transition

MIN_OUTAGE: Final = 600.0
HORIZON_1H: Final = 3600.0
HORIZON_24H: Final = 86_400.0

_UP: Final = frozenset({None, State.UNKNOWN, State.ONLINE, State.LATE})


def _drops(tr: Transition) -> bool:
    if tr.old not in _UP:
        return False
    if tr.new is State.STALE or tr.new is State.LOST:
        return True
    return tr.new is State.OFFLINE and tr.reason is Reason.CONNECTION_LOST


def outage_starts(transitions: Iterable[Transition]) -> dict[str, list[float]]:
    """Wall times at which each device's outages started, in order."""
    by_device: dict[str, list[Transition]] = {}
    for tr in transitions:
        by_device.setdefault(tr.device_id, []).append(tr)
    result: dict[str, list[float]] = {}
    for device_id, rows in by_device.items():
        rows.sort(key=lambda tr: tr.at_wall)
        starts: list[float] = []
        for i, tr in enumerate(rows):
            if not _drops(tr):
                continue
            back = next((r.at_wall for r in rows[i + 1 :] if r.new is State.ONLINE), None)
            if back is None or back - tr.at_wall >= MIN_OUTAGE:
                starts.append(tr.at_wall)
        if starts:
            result[device_id] = starts
    return result


def time_to_next_outage(
    device_ids: Sequence[str], times: npt.NDArray[np.float64], outages: Mapping[str, list[float]]
) -> npt.NDArray[np.float64]:
    """For each sample (device, wall time), seconds until the device's next outage; inf if none."""
    out = np.full(len(device_ids), np.inf)
    arrays = {k: np.asarray(v) for k, v in outages.items()}
    for i, device_id in enumerate(device_ids):
        starts = arrays.get(device_id)
        if starts is None:
            continue
        j = int(np.searchsorted(starts, times[i], side="right"))
        if j < len(starts):
            out[i] = starts[j] - times[i]
    return out

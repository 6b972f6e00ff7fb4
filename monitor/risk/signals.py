"""Per-device signals of coming trouble, kept up to date from what the monitor sees.

Pure like the liveness engine: no clock reads, no asyncio; ``now`` is the monitor's
monotonic receive time passed in. The shell calls :meth:`SignalTracker.heartbeat` for
every accepted heartbeat and :meth:`SignalTracker.transition` for every state change.

What is tracked, per device (each against the device's own history: a short and a
long time scale; the class baseline is taken at scoring time, ``features.py``):

* inter-arrival: EWMAs of the gap between heartbeats of one session as a multiple of
  the interval (slowing down), of its deviation from the recent mean (jitter), and a
  one-sided CUSUM of the gap's excess over the interval (a sustained slowdown, in the
  style of Page's CUSUM, drift ``CUSUM_SLACK``);
* missed beats (gaps spanning several intervals), late and offline transitions;
* reconnects (a new session) and reboots (a new session whose uptime went back);
* latency (``EventResult.latency``: receive wall clock minus the device's ``ts``, with a
  wrong clock's estimated offset taken out, ``liveness/clock.py``; what is left of a
  small skew still shifts it, so only its drift against the device's own usual value
  means anything);
* the device's own metrics where it sends them: battery, RSSI, temperature, free memory
  (recognised under a few common names, see ``METRIC_NAMES``).

Counters decay exponentially (time constants ``TAU_SHORT``, ``TAU_LONG``,
``TAU_REBOOT``): a decayed count reads as "about this many in the last τ".

Storage is one flat ``array`` per column (``COLUMN_TYPES``) and one slot per device: updates on the
receive path are a few scalar writes, and scoring copies whole columns into numpy at
once, which is what keeps scoring a million devices within seconds.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any, Final

from device_client.protocol import Heartbeat
from monitor.liveness.policy import DEFAULT_CLASS
from monitor.liveness.states import Reason, State, Transition

TAU_SHORT: Final = 3600.0
TAU_LONG: Final = 86_400.0
TAU_REBOOT: Final = 6 * 3600.0
# Metrics: a fast and a slow EWMA; their difference over (slow - fast) estimates the slope.
TAU_METRIC_FAST: Final = 900.0
TAU_METRIC_SLOW: Final = 3 * 3600.0
CUSUM_SLACK: Final = 0.15
CUSUM_GAP_CAP: Final = 3.0

METRIC_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "bat": ("battery_pct", "battery", "bat", "battery_percent", "soc"),
    "rssi": ("rssi_dbm", "rssi", "wifi_rssi", "signal_dbm"),
    "temp": ("temp_c", "temperature", "temp", "cpu_temp"),
    "mem": ("free_mem_kb", "free_mem", "free_heap", "heap_free", "mem_free"),
}

NAN: Final = math.nan
_HUGE: Final = math.inf  # x < inf and -inf < x: finite and not NaN, without a call

# Columns of per-device state; counters end in _s (TAU_SHORT), _l (TAU_LONG), or are the
# reboot counter (TAU_REBOOT).
EWMA_COLUMNS: Final = (
    "r_s", "r_l", "j_s", "j_l", "cusum", "lat_s", "lat_l",
    "bat_f", "bat_w", "rssi_f", "rssi_w", "temp_f", "temp_w", "mem_f", "mem_w",
    "rssi_l", "temp_l",
)  # fmt: skip
COUNTER_COLUMNS: Final = (
    "missed_s", "missed_l", "reconn_s", "reconn_l", "reboot_s", "reboot_l",
    "offline_s", "offline_l", "late_s", "late_l",
)  # fmt: skip
OTHER_COLUMNS: Final = ("interval", "last_t", "last_uptime", "upd_t", "first_t", "beats", "up")
COLUMNS: Final = EWMA_COLUMNS + COUNTER_COLUMNS + OTHER_COLUMNS
# Averages and decayed counts are estimates: single precision (7 digits) holds them, at
# 4 bytes a device per column instead of 8 (108 bytes a device over these 27 columns,
# ~100 MB at a million devices). Times, intervals and uptimes keep double precision: a
# monotonic time of days in single precision would be off by seconds.
COLUMN_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(EWMA_COLUMNS + COUNTER_COLUMNS, "f"),
    **dict.fromkeys(OTHER_COLUMNS, "d"),
}
COUNTER_TAU: Final[Mapping[str, float]] = {
    name: (TAU_REBOOT if name == "reboot_s" else TAU_SHORT if name.endswith("_s") else TAU_LONG)
    for name in COUNTER_COLUMNS
}

_DOWN_STATES: Final = frozenset({State.STALE, State.OFFLINE, State.LOST, State.MAINTENANCE})
_C: Final = {name: i for i, name in enumerate(COLUMNS)}


def metric_value(metrics: Mapping[str, Any], names: Iterable[str]) -> float:
    """The first of ``names`` present in ``metrics`` as a finite number, else NaN."""
    for name in names:
        value = metrics.get(name)
        if value is None:
            continue
        if value.__class__ is float:
            number = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)  # bool is an int: true is not a battery level of 1 %
        else:
            continue
        if -_HUGE < number < _HUGE:
            return float(number)
    return NAN


class SignalTracker:
    """Signals of every tracked device. One writer (the shell's loop); see ``lock``."""

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self._ids: list[str] = []
        self._classes: list[str] = []
        self._sessions: list[str | None] = []
        self._cols: list[array[float]] = [array(COLUMN_TYPES[name]) for name in COLUMNS]
        # The same arrays by name, as attributes: the receive path pays no dict lookup.
        self._c = SimpleNamespace(**dict(zip(COLUMNS, self._cols, strict=True)))
        self._metric_cols = [
            (
                self._cols[_C[f"{key}_f"]],
                self._cols[_C[f"{key}_w"]],
                self._cols[_C[f"{key}_l"]] if f"{key}_l" in _C else None,
                names,
            )
            for key, names in METRIC_NAMES.items()
        ]
        # Held while a slot is added and while a scorer thread copies the columns: an
        # array cannot grow while numpy is reading its buffer.
        self.lock = threading.Lock()
        # When the monitor last regained sight of the broker: a gap or a silence that
        # spans a blind period says nothing about the device.
        self.seeing_since = -math.inf

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._slots

    @property
    def device_ids(self) -> list[str]:
        return self._ids

    @property
    def device_classes(self) -> list[str]:
        return self._classes

    def column(self, name: str) -> array[float]:
        return self._cols[_C[name]]

    def value(self, device_id: str, name: str) -> float:
        """One column's current value for one device (counters undecayed); for tests."""
        return self._cols[_C[name]][self._slots[device_id]]

    def resumed(self, now: float) -> None:
        """The monitor sees again after a blind period (its broker connection was lost)."""
        self.seeing_since = now

    def set_class(self, device_id: str, device_class: str) -> None:
        slot = self._slots.get(device_id)
        if slot is not None:
            self._classes[slot] = device_class

    def forget(self, device_id: str) -> None:
        """Reset a device's history (ops forgot it); the slot is reused if it returns."""
        slot = self._slots.get(device_id)
        if slot is None:
            return
        self._reset(slot, NAN)
        self._sessions[slot] = None

    # ------------------------------------------------------------------ events

    def heartbeat(
        self,
        device_id: str,
        hb: Heartbeat,
        now: float,
        *,
        interval: float,
        latency: float | None = None,
        device_class: str | None = None,
    ) -> None:
        """An accepted (fresh, not duplicate) heartbeat received at ``now``.

        ``device_class`` None keeps the class known (``default`` for a new device).
        """
        slot = self._slots.get(device_id)
        if slot is None:
            slot = self._add(device_id, device_class or DEFAULT_CLASS)
        elif device_class is not None:
            self._classes[slot] = device_class
        c = self._c
        c.interval[slot] = interval
        if math.isnan(c.first_t[slot]):  # first heartbeat
            c.first_t[slot] = now
            c.upd_t[slot] = now
        c.beats[slot] += 1.0
        c.up[slot] = 1.0
        last_t = c.last_t[slot]
        session = self._sessions[slot]
        fresh = math.isnan(last_t)  # no heartbeat since tracking (re)started
        across_blind = not fresh and last_t < self.seeing_since
        if session is None or fresh:
            self._sessions[slot] = hb.session
        elif across_blind:
            # Blind in between: the gap is not the device's; a new session may be the
            # broker's restart (every device reconnects), so only a reboot counts.
            self._sessions[slot] = hb.session
            last_uptime = c.last_uptime[slot]
            uptime = hb.uptime
            if uptime is not None and not math.isnan(last_uptime) and uptime < last_uptime:
                self._count(slot, now, ("reboot_s", "reboot_l"), 1.0)
            fresh = True
        elif hb.session != session:
            self._sessions[slot] = hb.session
            last_uptime = c.last_uptime[slot]
            uptime = hb.uptime
            if uptime is not None and not math.isnan(last_uptime) and uptime < last_uptime:
                self._count(slot, now, ("reboot_s", "reboot_l"), 1.0)
            else:
                self._count(slot, now, ("reconn_s", "reconn_l"), 1.0)
        else:
            self._gap(slot, now, (now - last_t) / interval, now - last_t)
        # Time since the previous heartbeat weighs this one's samples (capped: after a
        # long silence one sample must not replace the whole history).
        dt = interval if fresh else min(max(now - last_t, 0.0), 4 * interval)
        c.last_t[slot] = now
        if hb.uptime is not None:
            c.last_uptime[slot] = hb.uptime
        if latency is not None and -_HUGE < latency < _HUGE:
            weights = (1.0 - math.exp(-dt / TAU_SHORT), 1.0 - math.exp(-dt / TAU_LONG))
            _ewma2(c.lat_s, c.lat_l, slot, latency, weights)
        metrics = hb.metrics
        if metrics:
            self._metrics(slot, metrics, dt)

    def transition(self, tr: Transition, now: float) -> None:
        """A state change: late and offline count; down devices are not scored."""
        slot = self._slots.get(tr.device_id)
        if slot is None:
            return
        up = self._cols[_C["up"]]
        if tr.new is State.LATE:
            self._count(slot, now, ("late_s", "late_l"), 1.0)
        elif tr.new is State.OFFLINE and tr.reason is Reason.CONNECTION_LOST:
            self._count(slot, now, ("offline_s", "offline_l"), 1.0)
        up[slot] = 0.0 if tr.new in _DOWN_STATES else 1.0

    # ---------------------------------------------------------------- internals

    def _add(self, device_id: str, device_class: str) -> int:
        with self.lock:
            slot = len(self._ids)
            self._slots[device_id] = slot
            self._ids.append(device_id)
            self._classes.append(device_class)
            self._sessions.append(None)
            for col in self._cols:
                col.append(NAN)
            self._reset(slot, NAN)
        return slot

    def _reset(self, slot: int, first_t: float) -> None:
        cols = self._cols
        for name in EWMA_COLUMNS:
            cols[_C[name]][slot] = NAN
        for name in COUNTER_COLUMNS:
            cols[_C[name]][slot] = 0.0
        cols[_C["cusum"]][slot] = 0.0
        for name in ("last_t", "last_uptime", "interval"):
            cols[_C[name]][slot] = NAN
        cols[_C["first_t"]][slot] = first_t
        cols[_C["upd_t"]][slot] = first_t
        cols[_C["beats"]][slot] = 0.0
        cols[_C["up"]][slot] = 1.0

    def _count(self, slot: int, now: float, names: tuple[str, ...], amount: float) -> None:
        """Add ``amount`` to decayed counters, decaying all of the slot's counters first."""
        cols = self._cols
        upd = cols[_C["upd_t"]]
        dt = now - upd[slot] if not math.isnan(upd[slot]) else 0.0
        if dt > 0:
            for name in COUNTER_COLUMNS:
                col = cols[_C[name]]
                col[slot] *= math.exp(-dt / COUNTER_TAU[name])
            upd[slot] = now
        for name in names:
            cols[_C[name]][slot] += amount

    def _gap(self, slot: int, now: float, ratio: float, seconds: float) -> None:
        c = self._c
        prev = c.r_s[slot]
        if ratio > 1.5:
            # A gap spanning several slots: beats went missing in between.
            self._count(slot, now, ("missed_s", "missed_l"), float(round(ratio) - 1))
        capped = min(ratio, CUSUM_GAP_CAP)
        if math.isnan(prev):
            c.r_s[slot] = capped
            c.r_l[slot] = capped
            c.j_s[slot] = 0.0
            c.j_l[slot] = 0.0
        else:
            a_s = 1.0 - math.exp(-seconds / TAU_SHORT)
            a_l = 1.0 - math.exp(-seconds / TAU_LONG)
            dev = abs(capped - prev)
            c.r_s[slot] = prev + a_s * (capped - prev)
            r_l, j_s, j_l = c.r_l, c.j_s, c.j_l
            r_l[slot] += a_l * (capped - r_l[slot])
            j_s[slot] += a_s * (dev - j_s[slot])
            j_l[slot] += a_l * (dev - j_l[slot])
        cusum = c.cusum
        cusum[slot] = max(0.0, cusum[slot] + capped - 1.0 - CUSUM_SLACK)

    def _metrics(self, slot: int, metrics: Mapping[str, Any], dt: float) -> None:
        # One set of decay factors for every metric of this heartbeat.
        a_f = 1.0 - math.exp(-dt / TAU_METRIC_FAST)
        a_w = 1.0 - math.exp(-dt / TAU_METRIC_SLOW)
        a_l = 1.0 - math.exp(-dt / TAU_LONG)
        for fast, slow, long_, names in self._metric_cols:
            value = metric_value(metrics, names)
            if math.isnan(value):  # not sent
                continue
            _ewma2(fast, slow, slot, value, (a_f, a_w))
            if long_ is not None:
                prev = long_[slot]
                long_[slot] = value if math.isnan(prev) else prev + a_l * (value - prev)


def _ewma2(
    fast: array[float], slow: array[float], slot: int, value: float, weights: tuple[float, float]
) -> None:
    """A fast and a slow time-weighted EWMA of one value; the first sample sets both."""
    a_f, a_w = weights
    prev = fast[slot]
    if math.isnan(prev):
        fast[slot] = value
        slow[slot] = value
        return
    fast[slot] = prev + a_f * (value - prev)
    slow[slot] += a_w * (value - slow[slot])

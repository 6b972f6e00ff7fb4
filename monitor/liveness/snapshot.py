"""Read-only view of one device: what the store persists and status topics show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.liveness.policy import DEFAULT_CLASS
from monitor.liveness.states import Reason, State


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """One device's persisted fields, plus two derived ones.

    The engine hands these out (``snapshot``, ``snapshots``, ``drain_dirty``) and takes
    them back in ``load`` after a restart; ``load`` ignores the derived fields.
    """

    device_id: str
    state: State
    since_wall: float
    reason: Reason | None = None
    session: str | None = None
    last_seq: int | None = None
    last_seen_wall: float | None = None
    announced_interval: float | None = None
    override_interval: float | None = None
    device_class: str = DEFAULT_CLASS
    in_maintenance: bool = False
    clock_offset: float | None = None
    """Estimated device clock minus the monitor's, seconds (``clock.py``); None: no
    heartbeat of the current session carried a ``ts``."""
    # Reported since the last drain (the store keeps the latest), else None; not
    # read by load():
    fw: str | None = None
    metrics: Mapping[str, object] | None = None
    # Derived -- not read by load():
    effective_interval: float | None = None
    confirmed: bool = False

"""Forgetting a device: ``clawbeat devices forget ID``.

One transaction: the device and its history are deleted, its open alert is resolved
(silently: nobody is reminded of a device that no longer exists), and a tombstone is
kept (``forgotten_devices``). The running monitor sees the configuration version
change, stops tracking the device and clears what the broker retains for it
(heartbeat, presence, status, config); a monitor that was not running does the same
when the broker replays those messages at its next start, so the device does not come
back from them. A device that is heard alive again is an ordinary device again.

The alerts wing stands above ops (it follows the configuration version ops announces),
so ops does not import it: the caller hands in the alerts' resolver
(``monitor.alerts.api.resolve_forgotten``), which runs in this same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.ops import config_version
from monitor.store import repository


class ResolveAlerts(Protocol):
    """Resolves a device's open alerts silently in the session's transaction; returns
    how many."""

    async def __call__(self, session: AsyncSession, *, device_id: str, now: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class Forgotten:
    device_id: str
    alerts_resolved: int


async def forget_device(
    session: AsyncSession, *, device_id: str, now: datetime, resolve_alerts: ResolveAlerts
) -> Forgotten:
    """Forget ``device_id`` (raises ``DeviceNotFound`` for an unknown one)."""
    await repository.delete_device(session, device_id=device_id)
    resolved = await resolve_alerts(session, device_id=device_id, now=now)
    await repository.add_forgotten(session, device_id=device_id, now=now)
    await config_version.bump(session)
    return Forgotten(device_id, resolved)

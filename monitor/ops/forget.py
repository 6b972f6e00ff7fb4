"""Forgetting a device: ``clawbeat devices forget ID``.

One transaction: the device and its history are deleted, its open alert is resolved
(silently: nobody is reminded of a device that no longer exists), and a tombstone is
kept (``forgotten_devices``). The running monitor sees the configuration version
change, stops tracking the device and clears what the broker retains for it
(heartbeat, presence, status, config); a monitor that was not running does the same
when the broker replays those messages at its next start, so the device does not come
back from them. A device that is heard alive again is an ordinary device again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.alerts import repository as alerts_repository
from monitor.ops import config_version
from monitor.store import repository


@dataclass(frozen=True, slots=True)
class Forgotten:
    device_id: str
    alerts_resolved: int


async def forget_device(session: AsyncSession, *, device_id: str, now: datetime) -> Forgotten:
    """Forget ``device_id`` (raises ``DeviceNotFound`` for an unknown one)."""
    await repository.delete_device(session, device_id=device_id)
    resolved = await alerts_repository.resolve_forgotten(session, device_id=device_id, now=now)
    await repository.add_forgotten(session, device_id=device_id, now=now)
    await config_version.bump(session)
    return Forgotten(device_id, resolved)

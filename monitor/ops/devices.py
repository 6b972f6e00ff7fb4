"""Changing a device: interval override, class, tags, maintenance.

``clawbeat devices set-interval|set-class|maintenance`` and ``PATCH /api/devices/{id}``
both call :func:`change_device`: the settings named change (validated as the protocol
and the engine would), the configuration version is bumped, and the caller commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from device_client.protocol import validate_interval
from monitor.ops import config_version
from monitor.store import repository


class DeviceSettings(TypedDict, total=False):
    """Settings of a device to change; a key left out keeps its value.

    ``interval: None`` drops the override (the class's interval, or what the device
    announces, applies again).
    """

    interval: float | None
    class_name: str
    tags: list[str]
    maintenance: bool


async def change_device(
    session: AsyncSession, *, device_id: str, settings: DeviceSettings, now: datetime
) -> tuple[str, str | None]:
    """Apply ``settings`` to a stored device; returns the new config version and the one
    it replaced. Raises ``DeviceNotFound``, ``ClassNotFound`` or ``ProtocolError`` (an
    interval out of range); nothing is changed then once the caller rolls back."""
    if "interval" in settings:
        interval = settings["interval"]
        if interval is not None:
            interval = validate_interval(interval, field="interval")
        await repository.set_interval_override(
            session, device_id=device_id, interval=interval, now=now
        )
    if "class_name" in settings:
        await repository.set_device_class(
            session, device_id=device_id, class_name=settings["class_name"], now=now
        )
    if "tags" in settings:
        tags = sorted(set(settings["tags"]))
        await repository.set_tags(session, device_id=device_id, tags=tags, now=now)
    if "maintenance" in settings:
        await repository.set_maintenance(
            session, device_id=device_id, in_maintenance=settings["maintenance"], now=now
        )
    return await config_version.bump(session)

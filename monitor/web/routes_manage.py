"""Admin endpoints: change devices and classes.

Every change is written to the database and announced by bumping the configuration
version (exactly what ``clawbeat devices ...`` does), so other monitors sharing the
database and this one after a restart see it. Because the API runs inside the monitor,
it then applies the change to the running engine at once instead of waiting for the
one-second poll: an interval change is on the device's retained config topic before
the response is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.ops.classes import (
    ClassChanged,
    ClassSettings,
    ClassSpec,
    change_class,
    remove_class,
    replace_class,
)
from monitor.ops.devices import DeviceSettings, change_device
from monitor.ops.errors import InvalidClassSetting
from monitor.store import reports
from monitor.store.errors import ClassInUse, ClassNotFound, DeviceNotFound
from monitor.web.auth import Admin
from monitor.web.deps import ADMIN_ERRORS, CONFLICT, NOT_FOUND, ClassPath, DevicePath, Service
from monitor.web.risk_view import with_risk
from monitor.web.routes_read import class_out
from monitor.web.schemas import ClassIn, ClassOut, ClassPatch, DeviceOut, DevicePatch, ErrorOut
from monitor.web.views import device_out

router = APIRouter(prefix="/api", responses=ADMIN_ERRORS)

_UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "Invalid input (e.g. an unknown class)"}
}


@router.patch(
    "/devices/{device_id}",
    response_model=DeviceOut,
    responses={**NOT_FOUND, **CONFLICT, **_UNPROCESSABLE},
    summary="Change a device: interval override, class, tags, maintenance",
    description="Only the fields present change. `interval` is pushed to the device on "
    "its retained config topic (null clears the override and the topic, unless its "
    "class has an interval). `maintenance: true` suspends its timing.",
)
async def patch_device(
    service: Service, _: Admin, device_id: DevicePath, body: DevicePatch
) -> DeviceOut:
    now = datetime.now(UTC)
    async with service.sessions() as session:
        if await reports.get_device(session, device_id=device_id) is None:
            if service.engine is not None and device_id in service.engine:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    detail=f"device {device_id!r} was seen moments ago and is not stored "
                    "yet; retry in a second",
                )
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no device {device_id!r}")
        # Present fields only; class, tags and maintenance are never null (DevicePatch).
        settings = cast(DeviceSettings, body.model_dump(exclude_unset=True))
        try:
            version, previous = await change_device(
                session, device_id=device_id, settings=settings, now=now
            )
        except DeviceNotFound as exc:  # forgotten meanwhile
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
        except ClassNotFound as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        await session.commit()
    await service.apply_config_change(version, previous=previous, device_ids=[device_id])
    async with service.sessions() as session:
        row = await reports.get_device(session, device_id=device_id)
    live = service.live_snapshot(device_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no device {device_id!r}")
    return with_risk(device_out(row, live), service.risk.report)


def _spec(name: str, body: ClassIn) -> ClassSpec:
    return ClassSpec(
        name=name,
        interval=body.interval,
        grace=body.grace,
        missed_limit=body.missed_limit,
        lost_after=body.lost_after,
        description=body.description,
    )


@router.put(
    "/classes/{name}",
    response_model=ClassOut,
    responses=_UNPROCESSABLE,
    summary="Create or replace a device class",
    description="A class's interval (if set) is what its devices are judged by and is "
    "pushed to each of them that has no override of its own.",
)
async def put_class(service: Service, _: Admin, name: ClassPath, body: ClassIn) -> ClassOut:
    return await _save_class(
        service, lambda session: replace_class(session, spec=_spec(name, body))
    )


@router.patch(
    "/classes/{name}",
    response_model=ClassOut,
    responses={**NOT_FOUND, **_UNPROCESSABLE},
    summary="Change some fields of a device class",
    description="Only the fields present change; `interval: null` returns the class to "
    "trusting each device's announced interval, `lost_after: null` means never lost.",
)
async def patch_class(service: Service, _: Admin, name: ClassPath, body: ClassPatch) -> ClassOut:
    # The same operation as `clawbeat classes set`, except that it creates nothing.
    settings = cast(ClassSettings, body.model_dump(exclude_unset=True))
    return await _save_class(
        service,
        lambda session: change_class(session, name=name, settings=settings, create=False),
    )


async def _save_class(
    service: Service, change: Callable[[AsyncSession], Awaitable[ClassChanged]]
) -> ClassOut:
    """Run one class change, commit it, have the monitor apply it, and show the class."""
    async with service.sessions() as session:
        try:
            changed = await change(session)
        except ClassNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
        except InvalidClassSetting as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        await session.commit()
        members = await reports.count_devices_by_class(session)
    await service.apply_config_change(changed.version, previous=changed.previous, device_ids=None)
    return class_out(changed.device_class, members.get(changed.device_class.name, 0))


@router.delete(
    "/classes/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Delete an unused device class",
)
async def delete_class(service: Service, _: Admin, name: ClassPath) -> Response:
    async with service.sessions() as session:
        try:
            version, previous = await remove_class(session, name=name)
        except ClassNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
        except ClassInUse as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        await session.commit()
    await service.apply_config_change(version, previous=previous, device_ids=None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

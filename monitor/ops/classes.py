"""Device classes: create, change and replace them.

``clawbeat classes set`` and ``PATCH /api/classes/{name}`` both call
:func:`change_class`: the settings named change, every other one keeps its stored
value (a new class starts from the defaults). ``PUT /api/classes/{name}`` calls
:func:`replace_class`, which sets them all. Both validate what they store, so a
command line and a request body obey the same ranges the engine does. Every change
announces itself (``config_version.bump``) in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.liveness.errors import InvalidPolicy
from monitor.liveness.policy import DEFAULT_LOST_AFTER, Policy
from monitor.ops import config_version
from monitor.ops.errors import InvalidClassSetting
from monitor.store import repository
from monitor.store.errors import ClassExists, ClassNotFound
from monitor.store.models import DeviceClass
from monitor.store.rows import ClassSpec

MAX_DESCRIPTION: Final = 1_000


class ClassSettings(TypedDict, total=False):
    """Settings of a class to change; a key left out keeps its value.

    ``interval: None`` trusts each device's announced interval; ``lost_after: None``
    means never lost.
    """

    interval: float | None
    grace: float
    missed_limit: int
    lost_after: float | None
    description: str


@dataclass(frozen=True, slots=True)
class ClassChanged:
    """A class written, and the configuration version that announces it."""

    device_class: DeviceClass
    created: bool
    version: str
    previous: str | None  # the version it replaced


def check_class(spec: ClassSpec) -> ClassSpec:
    """``spec`` with numbers normalised, or :class:`InvalidClassSetting`."""
    try:
        # The engine's own checks: what is stored is what a Policy can be built from.
        policy = Policy(
            interval=spec.interval,
            grace=spec.grace,
            missed_limit=spec.missed_limit,
            lost_after=DEFAULT_LOST_AFTER if spec.lost_after is None else spec.lost_after,
        )
    except InvalidPolicy as exc:
        raise InvalidClassSetting(str(exc), field=exc.field) from exc
    if not isinstance(spec.description, str) or len(spec.description) > MAX_DESCRIPTION:
        raise InvalidClassSetting(
            f"description: at most {MAX_DESCRIPTION} characters", field="description"
        )
    return dataclasses.replace(
        spec,
        interval=policy.interval,
        grace=policy.grace,
        missed_limit=policy.missed_limit,
        lost_after=None if spec.lost_after is None else policy.lost_after,
    )


def _spec_of(row: DeviceClass) -> ClassSpec:
    return ClassSpec(
        name=row.name,
        interval=row.interval,
        grace=row.grace,
        missed_limit=row.missed_limit,
        lost_after=row.lost_after,
        description=row.description,
    )


async def change_class(
    session: AsyncSession, *, name: str, settings: ClassSettings, create: bool
) -> ClassChanged:
    """Set the ``settings`` given on class ``name``; the others keep their values.

    A class that does not exist is created from the defaults when ``create``, else
    :class:`ClassNotFound` is raised.
    """
    row, created = await _change(session, name=name, settings=settings, create=create)
    return await _announced(session, row, created=created)


async def _change(
    session: AsyncSession, *, name: str, settings: ClassSettings, create: bool
) -> tuple[DeviceClass, bool]:
    current = await repository.get_class(session, name=name)
    if current is None:
        if not create:
            raise ClassNotFound(name)
        spec = check_class(dataclasses.replace(ClassSpec(name=name), **settings))
        try:
            return await repository.create_class(session, spec=spec), True
        except ClassExists:
            # Created by someone else since the read: change theirs, as if it had been
            # there all along (create_class leaves the transaction usable).
            current = await repository.get_class(session, name=name)
            if current is None:  # and deleted again meanwhile
                raise
    spec = check_class(dataclasses.replace(_spec_of(current), **settings))
    return await repository.update_class(session, spec=spec), False


async def replace_class(session: AsyncSession, *, spec: ClassSpec) -> ClassChanged:
    """Create class ``spec.name`` or replace every one of its settings."""
    spec = check_class(spec)
    if await repository.get_class(session, name=spec.name) is None:
        try:
            row = await repository.create_class(session, spec=spec)
        except ClassExists:  # created concurrently: replace it like an update
            pass
        else:
            return await _announced(session, row, created=True)
    return await _announced(session, await repository.update_class(session, spec=spec))


async def remove_class(session: AsyncSession, *, name: str) -> tuple[str, str | None]:
    """Delete an unused class (``clawbeat classes remove``, ``DELETE /api/classes/{name}``);
    returns the new config version and the one it replaced.

    Raises :class:`ClassNotFound`, or ``ClassInUse`` for ``default`` and for a class that
    still has devices.
    """
    await repository.delete_class(session, name=name)
    return await config_version.bump(session)


async def _announced(
    session: AsyncSession, row: DeviceClass, *, created: bool = False
) -> ClassChanged:
    version, previous = await config_version.bump(session)
    return ClassChanged(row, created, version, previous)


__all__ = [
    "ClassChanged",
    "ClassSettings",
    "ClassSpec",
    "change_class",
    "check_class",
    "remove_class",
    "replace_class",
]

"""Declared sources (fleets in other conventions): list, create or replace, delete.

The same operation as ``clawbeat sources ...`` (``monitor/ops/sources.py``): checked by
the code that reads the sources file, stored in the database, and applied by this monitor
before the answer (other monitors sharing the database within their config poll).
``GET`` also shows what the running monitor watches and counted.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field

from monitor.ops import sources as ops_sources
from monitor.ops.sources import remove_source, set_source
from monitor.sources.config import SourceConfigError
from monitor.web.auth import Admin, Reader
from monitor.web.deps import ADMIN_ERRORS, READ_ERRORS, ClassPath, Service
from monitor.web.schemas import ErrorOut

router = APIRouter(prefix="/api", tags=["sources"])

Kind = Literal["sparkplug", "tasmota", "esphome", "zigbee2mqtt", "shelly", "generic"]


class SourceIn(BaseModel):
    kind: Kind
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The kind's keys, as in a [[source]] table of docs/adapters.md",
        examples=[{"interval": 300, "prefix": "tele"}],
    )


class SourceOut(BaseModel):
    name: str
    kind: str
    options: dict[str, Any]
    stored: bool = Field(description="In the database (else: from the sources file)")
    active: bool = Field(description="Watched by this monitor now")
    counts: dict[str, int] = Field(
        default_factory=dict, description="What this monitor counted for it, by result"
    )


def _counts(service: Service, name: str) -> dict[str, int]:
    sources = service.sources
    return {} if sources is None else dict(sources.per_source.get(name, {}))


@router.get(
    "/sources",
    response_model=list[SourceOut],
    responses=READ_ERRORS,
    summary="Declared sources: stored ones and those of the sources file",
)
async def list_sources(service: Service, _: Reader) -> list[SourceOut]:
    async with service.sessions() as session:
        rows = await ops_sources.list_sources(session)
    active = {a.name for a in service.source_adapters}
    out = [
        SourceOut(
            name=r.name,
            kind=r.kind,
            options=dict(r.options),
            stored=True,
            active=r.name in active,
            counts=_counts(service, r.name),
        )
        for r in rows
    ]
    stored = {r.name for r in rows}
    out += [
        SourceOut(
            name=a.name,
            kind=type(a).__name__.removesuffix("Adapter").lower(),
            options={},
            stored=False,
            active=True,
            counts=_counts(service, a.name),
        )
        for a in service.source_adapters
        if a.name not in stored
    ]
    return out


_UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "Invalid source (unknown key, bad value)"}
}


@router.put(
    "/sources/{name}",
    response_model=SourceOut,
    responses={**ADMIN_ERRORS, **_UNPROCESSABLE},
    summary="Create or replace a stored source (applies to the running monitor)",
)
async def put_source(service: Service, _: Admin, name: ClassPath, body: SourceIn) -> SourceOut:
    async with service.sessions() as session:
        try:
            row, _created = await set_source(
                session, name=name, kind=body.kind, options=body.options
            )
        except SourceConfigError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        await session.commit()
    await service.apply_sources_change()
    active = any(a.name == name for a in service.source_adapters)
    return SourceOut(
        name=row.name,
        kind=row.kind,
        options=dict(row.options),
        stored=True,
        active=active,
        counts=_counts(service, name),
    )


@router.delete(
    "/sources/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**ADMIN_ERRORS, 404: {"model": ErrorOut, "description": "No such source"}},
    summary="Delete a stored source (applies to the running monitor)",
)
async def delete_source(service: Service, _: Admin, name: ClassPath) -> Response:
    async with service.sessions() as session:
        gone = await remove_source(session, name=name)
        await session.commit()
    if not gone:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no stored source {name!r}")
    await service.apply_sources_change()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

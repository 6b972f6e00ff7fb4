"""``/api/cluster``: the replicas, who owns which partition, their lease age and lag.

Read from the database (``monitor/cluster/view.py``, on the database's clock), so
every replica answers with the same cluster. A monitor on SQLite runs alone: the
answer says ``single`` with this monitor as the one replica.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import Field

from monitor.cluster.view import ClusterView, read_cluster
from monitor.web.auth import Reader
from monitor.web.deps import READ_ERRORS, Service
from monitor.web.schemas import OutModel

router = APIRouter(prefix="/api", responses=READ_ERRORS, tags=["read"])


class MemberOut(OutModel):
    replica: str = Field(description="The replica's configured name")
    owner: str = Field(description="Its owner name in the lease tables: name plus a run id")
    alive: bool = Field(description="Its membership has not expired (database clock)")
    partitions: list[int] = Field(description="Partitions it holds a live lease on")
    joined_at: datetime
    renewed_at: datetime | None = Field(description="Its last lease renewal")
    renewed_ago: float | None = Field(description="Seconds since then: the age of its leases")
    expires_at: datetime
    lag_seconds: float | None = Field(
        description="Its write-behind lag at that renewal: how far its rows trail it"
    )


class LeaseOut(OutModel):
    partition: int
    owner: str | None = Field(description="Live owner; null when released or expired")
    epoch: int = Field(description="Fencing token: grows by one at every acquisition")
    acquired_at: datetime | None
    held_for: float | None = Field(description="Seconds since the owner acquired it")
    expires_in: float | None = Field(description="Seconds until it runs out unless renewed")


class LeaseEventOut(OutModel):
    partition: int
    epoch: int
    owner: str
    event: Literal["acquire", "release"]
    at: datetime
    takeover_from: str | None = Field(
        description="An acquisition of a lease that expired: whose it was"
    )


class ClusterOut(OutModel):
    mode: Literal["single", "cluster"] = Field(
        description="single: one monitor on SQLite; cluster: replicas sharing PostgreSQL"
    )
    replica: str = Field(description="The replica that answered (its name)")
    owner: str | None = Field(description="Its owner name in the lease tables, in cluster mode")
    at: datetime = Field(description="The database's clock (single: the monitor's)")
    partitions: int
    unowned: list[int] = Field(description="Partitions no live replica holds")
    members: list[MemberOut]
    leases: list[LeaseOut]
    recent: list[LeaseEventOut] = Field(
        description="Latest acquisitions and releases, newest first"
    )


def _cluster_out(view: ClusterView, *, replica: str, owner: str | None) -> ClusterOut:
    return ClusterOut(
        mode="cluster",
        replica=replica,
        owner=owner,
        at=view.at,
        partitions=view.partitions,
        unowned=list(view.unowned),
        members=[
            MemberOut(
                replica=m.name,
                owner=m.owner,
                alive=m.alive,
                partitions=list(m.partitions),
                joined_at=m.joined_at,
                renewed_at=m.renewed_at,
                renewed_ago=m.renewed_ago,
                expires_at=m.expires_at,
                lag_seconds=m.lag_seconds,
            )
            for m in view.members
        ],
        leases=[
            LeaseOut(
                partition=p.partition,
                owner=p.owner,
                epoch=p.epoch,
                acquired_at=p.acquired_at,
                held_for=p.held_for,
                expires_in=p.expires_in,
            )
            for p in view.leases
        ],
        recent=[
            LeaseEventOut(
                partition=e.partition,
                epoch=e.epoch,
                owner=e.owner,
                event="acquire" if e.event == "acquire" else "release",
                at=e.at,
                takeover_from=e.takeover_from,
            )
            for e in view.recent
        ],
    )


@router.get(
    "/cluster",
    response_model=ClusterOut,
    summary="Replicas, the partitions each owns, lease age and lag, recent takeovers",
    description="From the database's lease tables, on the database's clock: the same "
    "answer from every replica. On SQLite, `single`: this monitor alone.",
)
async def cluster(service: Service, _: Reader) -> ClusterOut:
    keeper = service.keeper
    async with service.sessions() as session:
        view = await read_cluster(session)
    if view is None:
        return ClusterOut(
            mode="single",
            replica=service.instance,
            owner=None,
            at=datetime.now(UTC),
            partitions=1,
            unowned=[],
            members=[],
            leases=[],
            recent=[],
        )
    return _cluster_out(
        view,
        replica=service.instance,
        owner=keeper.owner if keeper is not None else None,
    )

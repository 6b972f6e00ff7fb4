"""``clawbeat cluster status``: the replicas, who owns which partition, recent takeovers.

Read from the database (``monitor/cluster/view.py``), on its clock, so it answers the
same from any machine that reaches it, and says so when a replica is frozen or gone. On
SQLite there is no cluster: it says so in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from monitor.cli_common import add_database_option, db_session, settings_from
from monitor.cli_table import render_table, when
from monitor.cluster.partitions import partition_spans
from monitor.cluster.view import ClusterView, MemberView, PartitionView, read_cluster
from monitor.store.database import display_url

MEMBER_COLUMNS = ("REPLICA", "STATE", "PARTITIONS", "OWNS", "RENEWED", "LAG", "JOINED", "OWNER")
PARTITION_COLUMNS = ("PARTITION", "OWNER", "EPOCH", "HELD FOR", "EXPIRES IN")
TAKEOVERS_SHOWN = 5


def add_cluster_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("cluster", help="cluster mode: replicas and partition owners")
    sub = p.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")
    status = sub.add_parser(
        "status",
        help="replicas, the partitions each owns, lease age and lag",
        description="Every replica in the database's cluster tables: live or gone, the "
        "partitions it owns, how long ago it renewed its leases (database clock) and its "
        "write lag then; partitions nobody owns; the latest takeovers.",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.add_argument(
        "--partitions",
        action="store_true",
        # Not "partitions": that is a setting, which settings_from would take it for.
        dest="show_partitions",
        help="also a table of every partition's lease",
    )
    add_database_option(status)
    status.set_defaults(func=_status)


def ranges(partitions: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2,5,7-8``; ``-`` for none."""
    return partition_spans(partitions) or "-"


def _secs(value: float | None, *, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.1f}s{suffix}"


def _member_row(m: MemberView) -> tuple[str, ...]:
    return (
        m.name,
        "live" if m.alive else "gone",
        str(len(m.partitions)),
        ranges(m.partitions),
        _secs(m.renewed_ago, suffix=" ago"),
        _secs(m.lag_seconds),
        when(m.joined_at),
        m.owner,
    )


def _partition_row(p: PartitionView) -> tuple[str, ...]:
    return (
        str(p.partition),
        p.owner or "-",
        str(p.epoch),
        _secs(p.held_for) if p.owner else "-",
        _secs(p.expires_in) if p.owner else "-",
    )


def render(view: ClusterView, *, partitions: bool = False) -> str:
    live = view.live_members
    unowned = view.unowned
    lines = [
        f"{len(live)} replica{'s' if len(live) != 1 else ''} live, {view.partitions} "
        f"partitions, {len(unowned)} unowned{f' ({ranges(unowned)})' if unowned else ''}; "
        f"database clock {when(view.at)}"
    ]
    if view.members:
        lines.append(render_table(MEMBER_COLUMNS, [_member_row(m) for m in view.members]))
    takeovers = [e for e in view.recent if e.takeover_from is not None][:TAKEOVERS_SHOWN]
    for event in takeovers:
        lines.append(
            f"takeover: partition {event.partition} by {event.owner} from "
            f"{event.takeover_from} at {when(event.at)} (epoch {event.epoch})"
        )
    if partitions:
        lines.append(render_table(PARTITION_COLUMNS, [_partition_row(p) for p in view.leases]))
    return "\n".join(lines)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def as_json(view: ClusterView) -> dict[str, Any]:
    return {
        "mode": "cluster",
        "at": _iso(view.at),
        "partitions": view.partitions,
        "unowned": list(view.unowned),
        "members": [
            {
                "replica": m.name,
                "owner": m.owner,
                "alive": m.alive,
                "partitions": list(m.partitions),
                "joined_at": _iso(m.joined_at),
                "renewed_at": _iso(m.renewed_at),
                "renewed_ago": m.renewed_ago,
                "expires_at": _iso(m.expires_at),
                "lag_seconds": m.lag_seconds,
            }
            for m in view.members
        ],
        "leases": [
            {
                "partition": p.partition,
                "owner": p.owner,
                "epoch": p.epoch,
                "acquired_at": _iso(p.acquired_at),
                "held_for": p.held_for,
                "expires_in": p.expires_in,
            }
            for p in view.leases
        ],
        "recent": [
            {
                "partition": e.partition,
                "epoch": e.epoch,
                "owner": e.owner,
                "event": e.event,
                "at": _iso(e.at),
                "takeover_from": e.takeover_from,
            }
            for e in view.recent
        ],
    }


SINGLE = "single replica: {url} is SQLite, which runs one monitor (cluster mode needs PostgreSQL)"


async def _read(url: str) -> ClusterView | None:
    async with db_session(url) as session:
        return await read_cluster(session)


def _status(args: argparse.Namespace) -> int:
    url = settings_from(args).database_url
    view = asyncio.run(_read(url))
    if view is None:
        if args.json:
            print(json.dumps({"mode": "single"}))
        else:
            print(SINGLE.format(url=display_url(url)))
        return 0
    if args.json:
        print(json.dumps(as_json(view)))
    else:
        print(render(view, partitions=args.show_partitions))
    return 0

"""Prometheus figures of cluster mode (docs/cluster.md), read at scrape time.

From the lease keeper's :class:`~monitor.cluster.keeper_stats.KeeperStats` and the
writer's fencing counts. A monitor that runs alone (no keeper) exports none of them:
a dashboard then shows "no data" rather than a cluster of one that was never asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from monitor.cluster.keeper import LeaseKeeper
    from monitor.store.writer import WriteBehind


class ClusterCollector(Collector):
    """``keeper()`` is asked at every scrape: the service builds its keeper after this."""

    def __init__(
        self, keeper: Callable[[], LeaseKeeper | None], writer: Callable[[], WriteBehind]
    ) -> None:
        self._keeper = keeper
        self._writer = writer

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        keeper = self._keeper()
        if keeper is None:
            return
        stats = keeper.stats
        held = list(keeper.leases)
        yield GaugeMetricFamily(
            "clawbeat_cluster_partitions_owned",
            f"Partitions (of {keeper.partitions}) whose lease this replica holds",
            value=float(len(held)),
        )
        yield GaugeMetricFamily(
            "clawbeat_cluster_partitions_acting",
            "Partitions this replica publishes and alerts for now (owned, not being handed "
            "off, lease not about to run out)",
            value=float(sum(1 for p in held if keeper.acting(p))),
        )
        renew = HistogramMetricFamily(
            "clawbeat_cluster_lease_renew_seconds",
            "Duration of one lease renewal (membership and every held lease, one transaction)",
        )
        renew.add_metric([], stats.renew.cumulative(), sum_value=stats.renew.total)
        yield renew
        yield CounterMetricFamily(
            "clawbeat_cluster_takeovers",
            "Partitions acquired after another replica's lease on them expired (it died or "
            "froze), rather than by handoff",
            value=stats.takeovers,
        )
        changes = CounterMetricFamily(
            "clawbeat_cluster_lease_changes",
            "Leases acquired, released (handoff, stop) and lost (not renewed) by this replica",
            labels=["event"],
        )
        changes.add_metric(["acquired"], stats.acquired)
        changes.add_metric(["released"], stats.released)
        changes.add_metric(["lost"], stats.lost)
        yield changes
        yield CounterMetricFamily(
            "clawbeat_cluster_lease_step_failures",
            "Lease steps (renew, rebalance) that failed: the database was unavailable",
            value=stats.step_failures,
        )
        yield CounterMetricFamily(
            "clawbeat_cluster_fenced_rows",
            "Rows the database refused because their partition's lease had moved on "
            "(written after this replica lost it: a freeze, a partition from the database)",
            value=self._writer().stats.rows_fenced,
        )

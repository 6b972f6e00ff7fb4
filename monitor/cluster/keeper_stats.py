"""What a lease keeper counts, for ``/metrics`` (read at scrape time, like the writer's).

A plain object the keeper updates as it goes: no Prometheus types here, so the cluster
package stays free of the metrics stack and tests read the figures directly.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Final

# A renewal is one short statement; past a second something is wrong (the database is
# slow or far), and at ttl / 3 the leases start to be at risk.
RENEW_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class Latency:
    """A histogram of seconds: ``counts[i]`` observations fell at or below ``buckets[i]``
    (not cumulative; the last slot is above every bucket)."""

    buckets: tuple[float, ...] = RENEW_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(RENEW_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0
    last: float | None = None

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.total += seconds
        self.count += 1
        self.last = seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, observations at or below it)`` up to ``+Inf``, as Prometheus has it."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*map(repr, self.buckets), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass(slots=True)
class KeeperStats:
    steps: int = 0
    step_failures: int = 0
    """Steps that could not reach the database (the leases then run out on their own)."""
    renew: Latency = field(default_factory=Latency)
    """One renewal: membership and every held lease, one transaction."""
    acquired: int = 0
    takeovers: int = 0
    """Acquisitions of a lease another replica held until it expired (a dead or frozen
    replica's partition), as opposed to one released to us by handoff."""
    released: int = 0
    lost: int = 0
    """Leases this replica believed it held that the database did not renew."""

"""A replica's own view of a lease: measured from before the request, ended early."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.cluster.fencing import Fence
from monitor.cluster.keeper import KeeperTiming
from monitor.cluster.leases import Lease

EXPIRES = datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC)


def test_a_replica_stops_acting_a_margin_before_its_own_lease_ends() -> None:
    lease = Lease(partition=3, epoch=7, owner="a:1", expires_at=EXPIRES, valid_until=110.0)
    assert lease.acting(100.0, margin=2.0)
    assert lease.acting(107.9, margin=2.0)
    assert not lease.acting(108.0, margin=2.0)
    assert not lease.acting(500.0, margin=2.0)  # woken from a freeze: over at first look


@pytest.mark.parametrize(
    ("ttl", "renew_every", "margin"), [(10, 5, 1), (10, 0, 1), (10, 2, -1), (4, 2, 0.5)]
)
def test_lease_timing_leaves_room_for_two_renewals(
    ttl: float, renew_every: float, margin: float
) -> None:
    with pytest.raises(ValueError, match="2 \\* renew_every \\+ margin <= ttl"):
        KeeperTiming(ttl=ttl, renew_every=renew_every, margin=margin)


def test_a_fence_takes_only_its_owners_leases() -> None:
    mine = Lease(partition=1, epoch=2, owner="a:1", expires_at=EXPIRES, valid_until=1.0)
    theirs = Lease(partition=2, epoch=5, owner="b:1", expires_at=EXPIRES, valid_until=1.0)
    assert Fence.of(owner="a:1", partitions=8, leases=[mine]).epochs == {1: 2}
    with pytest.raises(ValueError, match="lease of partition 2 is b:1's"):
        Fence.of(owner="a:1", partitions=8, leases=[mine, theirs])

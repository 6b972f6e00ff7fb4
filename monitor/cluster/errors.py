"""Errors of cluster mode; each message is one line an operator can act on."""

from __future__ import annotations

from monitor.errors import MonitorError


class ClusterError(MonitorError):
    """Base class of the errors ``monitor.cluster`` raises."""


class NeedsPostgres(ClusterError):
    """Leases and fencing exist on PostgreSQL only."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(f"{operation}: cluster mode needs PostgreSQL; SQLite is single-replica")


class PartitionCountMismatch(ClusterError):
    """This replica's CLAWBEAT_PARTITIONS differs from the database's."""

    def __init__(self, *, configured: int, stored: int) -> None:
        self.configured = configured
        self.stored = stored
        super().__init__(
            f"CLAWBEAT_PARTITIONS is {configured} but the database's cluster has {stored} "
            "partitions; every replica must use the same number"
        )


class LeaseLost(ClusterError):
    """A write was fenced: this replica no longer holds the partition at that epoch."""

    def __init__(self, *, partition: int, epoch: int, owner: str) -> None:
        self.partition = partition
        self.epoch = epoch
        self.owner = owner
        super().__init__(f"{owner} no longer holds partition {partition} at epoch {epoch}")


class SecondReplica(ClusterError):
    """Another monitor already runs on this SQLite database."""

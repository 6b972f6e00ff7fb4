"""What the write-behind needs of cluster mode: a fence to write its batches through.

In cluster mode every batch is written only for the partitions this replica holds at
that moment (``docs/cluster.md``). The fence itself (leases, epochs, the row locks that
hold them) lives in ``monitor.cluster.fencing``, above the store; the writer knows it
only through this protocol, which ``monitor.cluster.fencing.Fence`` meets as it stands,
so the store imports nothing of the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store.rows import DeviceRow, RollupRow, TransitionRow


@dataclass(slots=True)
class Rejections:
    """Rows the database refused because their partition's lease had moved on."""

    rows: int = 0
    by_partition: dict[int, int] = field(default_factory=dict)

    def add(self, partition: int, count: int) -> None:
        self.rows += count
        self.by_partition[partition] = self.by_partition.get(partition, 0) + count


class WriteFence(Protocol):
    """Writes rows of held partitions in the caller's transaction, refuses the others.

    Each method returns how many rows it refused and adds them to ``rejections``.
    """

    async def write_devices(
        self,
        session: AsyncSession,
        *,
        rows: Sequence[DeviceRow],
        now: datetime,
        rejections: Rejections,
    ) -> int: ...

    async def write_transitions(
        self, session: AsyncSession, *, rows: Sequence[TransitionRow], rejections: Rejections
    ) -> int: ...

    async def write_rollups(
        self, session: AsyncSession, *, rows: Sequence[RollupRow], rejections: Rejections
    ) -> int: ...

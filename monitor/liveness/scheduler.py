"""One deadline scheduler for every device: a binary heap with lazy deletion.

Why not a timer per device: a million asyncio timers cost far more memory and
wake-ups than one heap popped by a periodic tick.

The trick that keeps memory bounded: a heartbeat usually moves a device's deadline
*later*. Pushing a heap entry per heartbeat would grow the heap by 10 000 entries a
second. Instead each item carries two numbers:

* ``deadline`` -- when it really expires (``inf``: no deadline);
* ``queued``   -- the time of its one *live* heap entry (``inf``: none).

Invariant: whenever ``deadline`` is finite, ``queued <= deadline``. Moving a deadline
later only rewrites ``deadline``; the live entry pops early, sees the deadline moved,
and is re-pushed at the real deadline. Moving it earlier pushes a new entry and turns
the old one into garbage (its time no longer equals ``queued``). Garbage is dropped
when it pops, and the heap is compacted when garbage makes up most of it.

Items are looked up by key when their entry pops, so the heap holds only
``(time, key)`` tuples and a forgotten key simply finds nothing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

INF: Final = math.inf

# Below this size garbage is cheaper to carry than a rebuild.
_COMPACT_MIN_GARBAGE: Final = 1024


class Timed(Protocol):
    deadline: float
    queued: float


T = TypeVar("T", bound=Timed)


class DeadlineScheduler(Generic[T]):
    """Heap of ``(time, key)`` entries; the items themselves hold their true deadline."""

    __slots__ = ("_garbage", "_heap", "_lookup")

    def __init__(self, lookup: Callable[[str], T | None]) -> None:
        self._heap: list[tuple[float, str]] = []
        self._lookup = lookup
        self._garbage = 0

    def __len__(self) -> int:
        """Heap entries, live and garbage (what memory the scheduler holds)."""
        return len(self._heap)

    @property
    def garbage(self) -> int:
        """Entries known to be dead (an estimate; exact right after :meth:`compact`)."""
        return self._garbage

    def set(self, key: str, item: T, when: float) -> None:
        """Make ``when`` the item's deadline (``inf`` clears it)."""
        item.deadline = when
        if when < item.queued:
            if item.queued != INF:
                self._garbage += 1
            item.queued = when
            heapq.heappush(self._heap, (when, key))
            self._maybe_compact()

    def add_many(self, entries: list[tuple[float, str]]) -> None:
        """Add the live entries of items just created, in bulk (a start-up load).

        Each entry's item must already hold ``deadline == queued == time`` and have had
        no entry before. One heapify of the whole heap instead of a push per entry.
        """
        if not entries:
            return
        heap = self._heap
        if len(entries) < len(heap) // 8:
            for entry in entries:
                heapq.heappush(heap, entry)
            return
        heap.extend(entries)
        heapq.heapify(heap)

    def forget(self, item: T) -> None:
        """Drop the item's deadline; its heap entry becomes garbage."""
        if item.queued != INF:
            self._garbage += 1
            self._maybe_compact()
        item.queued = INF
        item.deadline = INF

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[str, T]]:
        """Remove and return every item whose deadline is ``<= now``, earliest first;
        at most ``limit`` of them (the rest stay due for the next call).

        A returned item is no longer scheduled: the caller sets its next deadline.
        Cost is proportional to the entries popped, never to the number of items.
        """
        heap = self._heap
        lookup = self._lookup
        due: list[tuple[str, T]] = []
        room = INF if limit is None else limit
        while heap and heap[0][0] <= now and len(due) < room:
            when, key = heapq.heappop(heap)
            item = lookup(key)
            if item is None or item.queued != when:
                if self._garbage:
                    self._garbage -= 1
                continue
            deadline = item.deadline
            if deadline == INF:
                item.queued = INF
            elif deadline <= now:
                item.queued = INF
                due.append((key, item))
            else:
                # The deadline moved later since this entry was pushed: re-queue it.
                item.queued = deadline
                heapq.heappush(heap, (deadline, key))
        return due

    def next_due(self) -> float:
        """Time of the earliest entry (maybe garbage or premature); ``inf`` if none."""
        return self._heap[0][0] if self._heap else INF

    def compact(self) -> None:
        """Rebuild the heap from live entries only (O(entries))."""
        lookup = self._lookup
        live: list[tuple[float, str]] = []
        for entry in self._heap:
            item = lookup(entry[1])
            if item is not None and item.queued == entry[0]:
                live.append(entry)
        heapq.heapify(live)
        self._heap = live
        self._garbage = 0

    def _maybe_compact(self) -> None:
        if self._garbage > _COMPACT_MIN_GARBAGE and 2 * self._garbage >= len(self._heap):
            self.compact()

"""The cyclic garbage collector's settings for a monitor in steady state.

Almost nothing the monitor allocates per message forms a cycle: payload structs, engine
results and rollup keys are freed by reference counting the moment they are dropped.
The cyclic collector still runs every ``threshold0`` container allocations (700 by
default, a few dozen heartbeats) and every tenth of those runs also walks everything
that survived, so with ten thousand devices beating it ran over a hundred times a second
and its full passes walked every device record. The monitor's long-lived state (device
records, their deadlines) is frozen out of the collector's reach after load, and the
collector runs far less often: the cycles it exists for (asyncio tasks and exceptions,
SQLAlchemy sessions) are few, and wait a little longer.
"""

from __future__ import annotations

import gc
from typing import Final

# Container allocations between young collections. A young collection's cost grows with
# the objects it walks, so fewer, larger ones cost about the same in total; what this
# saves is the older generations, collected every 10 young ones, which walk everything
# not frozen. 50,000 allocations are a few thousand heartbeats: garbage cycles still go
# within a fraction of a second at full load, a few MB at most.
YOUNG_THRESHOLD: Final = 50_000


def settle() -> None:
    """Collect, freeze what survives (state that lives as long as the process), and
    raise the young threshold. Called once the monitor's state is loaded."""
    gc.collect()
    # Frozen objects are never walked again; they are still freed by reference counting
    # when dropped (a forgotten device), only cycles among them would stay.
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)

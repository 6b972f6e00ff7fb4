"""Times as the monitor shows them: the fast ISO formatter says what datetime says."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from monitor.timefmt import iso


def _datetime_iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_iso_is_datetimes_isoformat_to_the_millisecond() -> None:
    rng = random.Random(11)
    walls = [rng.uniform(-1e9, 4e9) for _ in range(20_000)]
    # Fractions on the rounding edges: half a microsecond, a hair below a whole second.
    walls += [1.7e9 + k / 1e6 + 5e-7 for k in range(5_000)]
    walls += [1e9 + 0.9999995, 1e9 - 5e-7, 0.0, -4e-7, 1.7e9 + 0.9999996, 1_764_000_000.0]
    assert [iso(w) for w in walls] == [_datetime_iso(w) for w in walls]
    assert iso(None) is None
    assert iso(1_764_000_000.0126) == "2025-11-24T16:00:00.012Z"

"""Failed-authentication budget per client address (pure: time is passed in).

Rules:

1. Each client has a bucket of ``burst`` failures that refills at ``per_second`` up to
   ``burst``. A wrong token takes one failure from it.
2. A client whose bucket holds less than one failure is refused before its token is
   looked at (429 with ``Retry-After``), a correct token included: otherwise a guesser
   would still get every guess checked, and a database query made for it.
3. Clients are addresses; IPv6 addresses count per /64, the block one host is usually
   given, so rotating addresses inside it buys nothing.
4. Memory is bounded: at most ``max_clients`` buckets. A full bucket is the same as no
   bucket, so refilled ones are dropped first; when the table is still full, the client
   that failed least recently is forgotten.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from typing import Final

BURST: Final = 20
PER_SECOND: Final = 1.0
MAX_CLIENTS: Final = 10_000


def client_key(host: str | None) -> str:
    """The address a budget is kept for: IPv4 as it is, IPv6 by its /64."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a Unix socket path or a name from a proxy header
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailureLimiter:
    def __init__(
        self,
        *,
        burst: int = BURST,
        per_second: float = PER_SECOND,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if burst < 1 or per_second <= 0 or max_clients < 1:
            raise ValueError("burst >= 1, per_second > 0 and max_clients >= 1")
        self.burst = burst
        self.per_second = per_second
        self.max_clients = max_clients
        # client -> (failures left, when that was computed); least recently failed first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, client: str, now: float) -> float:
        entry = self._buckets.get(client)
        if entry is None:
            return float(self.burst)
        left, at = entry
        return min(float(self.burst), left + max(0.0, now - at) * self.per_second)

    def retry_after(self, client: str, now: float) -> int | None:
        """None if ``client`` may try a token now, else whole seconds to wait (>= 1)."""
        level = self._level(client, now)
        if level >= 1.0:
            return None
        return max(1, math.ceil((1.0 - level) / self.per_second))

    def failed(self, client: str, now: float) -> None:
        """``client`` sent a wrong token at ``now``."""
        level = self._level(client, now) - 1.0
        buckets = self._buckets
        if client in buckets:
            buckets.move_to_end(client)
        else:
            self._make_room(now)
        buckets[client] = (max(level, 0.0), now)

    def _make_room(self, now: float) -> None:
        buckets = self._buckets
        # Oldest first: the least recently failed are the likeliest to have refilled.
        while buckets:
            oldest = next(iter(buckets))
            if len(buckets) < self.max_clients and self._level(oldest, now) < self.burst:
                return
            del buckets[oldest]

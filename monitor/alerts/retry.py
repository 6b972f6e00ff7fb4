"""Delivery retry timing: capped exponential backoff with jitter. Pure.

Attempt n (1-based) failed -> wait ``min(cap, base x 2^(n-1))``, scaled by a jitter
factor in [0.8, 1.2] (the caller passes it, so tests are exact) and never above ``cap``.
After ``max_attempts`` failed attempts the delivery is given up (state ``failed``),
visible in ``clawbeat alerts deliveries`` and retried by hand with ``alerts retry``.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_client.backoff import spread_delay


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 5.0
    cap: float = 900.0
    max_attempts: int = 20

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.max_attempts < 1:
            raise ValueError("retry: base > 0, cap >= base, max_attempts >= 1")

    def delay(self, attempts: int, jitter: float = 1.0) -> float:
        """Seconds to wait after ``attempts`` failed attempts."""
        return spread_delay(attempts - 1, base=self.base, cap=self.cap, factor=jitter)

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

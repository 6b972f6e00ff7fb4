"""The fault tests' check for two owners of one partition at once (tests/harness).

It reads the lease history each acquisition writes (the row as the acquirer found it);
a check that passes everything would make the PostgreSQL-restart test prove nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.harness.monitor_cluster import LeaseEvent, overlapping_owners

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def acquire(
    epoch: int,
    owner: str,
    when: float,
    *,
    previous: str | None = None,
    ran_until: float | None = None,
) -> LeaseEvent:
    return LeaseEvent(
        partition=7,
        epoch=epoch,
        owner=owner,
        event="acquire",
        at=at(when),
        previous_owner=previous,
        previous_expires_at=None if ran_until is None else at(ran_until),
    )


def release(epoch: int, owner: str, when: float) -> LeaseEvent:
    return LeaseEvent(7, epoch, owner, "release", at(when), None, None)


def test_a_handoff_and_a_takeover_after_expiry_never_overlap() -> None:
    history = [
        acquire(1, "a:1", 0),
        release(1, "a:1", 5),
        acquire(2, "b:1", 5.2),  # handed off: released first
        acquire(3, "c:1", 20, previous="b:1", ran_until=19.5),  # b died; its lease ran out
    ]
    assert overlapping_owners(history) == []


def test_a_lease_taken_before_it_ran_out_is_two_owners() -> None:
    history = [acquire(1, "a:1", 0), acquire(2, "b:1", 4, previous="a:1", ran_until=5)]
    (problem,) = overlapping_owners(history)
    assert "whose lease ran until" in problem


def test_taken_as_released_without_a_release_is_two_owners() -> None:
    history = [acquire(1, "a:1", 0), acquire(2, "b:1", 4), release(1, "a:1", 6)]
    (problem,) = overlapping_owners(history)
    assert "never released" in problem


def test_an_epoch_skipped_or_taken_from_someone_else_is_reported() -> None:
    skipped = [acquire(1, "a:1", 0), acquire(3, "b:1", 9, previous="a:1", ran_until=8)]
    assert any("follows epoch 1" in p for p in overlapping_owners(skipped))
    stranger = [acquire(1, "a:1", 0), acquire(2, "b:1", 9, previous="x:1", ran_until=8)]
    assert any("not a:1" in p for p in overlapping_owners(stranger))

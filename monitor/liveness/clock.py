"""A device's clock offset, estimated from its heartbeats' ``ts``; pure arithmetic.

One sample is ``ts - receive wall``: the device clock's offset from the monitor's
minus that message's transport delay. The two cannot be told apart from one sample,
but delay is never negative, so the sample with the least delay is the best estimate
(the idea behind NTP's minimum filter). The running estimate:

* follows any sample above it at once (less delay -- or the clock stepped forward);
* sinks towards lower samples slowly (1/16 per sample), so it follows a drifting clock
  without letting one slow message (a delivery backlog) move it;
* takes a step back of more than ``STEP`` seconds only when ``STEP_VOTES`` samples in a
  row agree on it within ``STEP_AGREE`` seconds (a backlog's samples do not: their
  delays shrink as it drains), so a clock set back is followed after a few beats.

A new session starts a new estimate: devices often set their clock when they boot.

Latency figures subtract the estimate when it is beyond ``TOLERANCE``: a clock that far
off is skew, not delay, and left in it would swamp the fleet's latency (an hour is
3,600,000 ms). Within the tolerance the device is taken at its word, so an NTP-synced
fleet shows its real one-way latency.
"""

from __future__ import annotations

from typing import Final

TOLERANCE: Final = 1.0
"""Seconds of offset below which a device's clock is taken to agree with the monitor's."""
STEP: Final = 2.0
STEP_AGREE: Final = 0.5
STEP_VOTES: Final = 4
SINK: Final = 1.0 / 16.0


class StepVotes:
    """Samples agreeing on a step back, while one is suspected (rare: kept apart from the
    per-device record, which holds only the offset)."""

    __slots__ = ("candidate", "votes")

    def __init__(self, candidate: float) -> None:
        self.candidate = candidate
        self.votes = 1


def update(
    offset: float, sample: float, step: StepVotes | None
) -> tuple[float, float, StepVotes | None]:
    """Take one ``ts - receive wall`` sample into the estimate ``offset``.

    Returns ``(new offset, offset this sample's latency is judged by, step votes)``: a
    sample is judged by the estimate it was measured against, or by the new one if it
    moved the estimate up or made it step.
    """
    if sample >= offset:
        return sample, sample, None
    if offset - sample <= STEP:
        return offset + (sample - offset) * SINK, offset, None
    if step is not None and abs(sample - step.candidate) <= STEP_AGREE:
        step.votes += 1
    else:
        step = StepVotes(sample)
    if step.votes < STEP_VOTES:
        return offset, offset, step
    new = max(sample, step.candidate)
    return new, new, None


def skewed(offset: float | None) -> bool:
    """True if the offset is beyond the tolerance: the device's clock is wrong."""
    return offset is not None and abs(offset) > TOLERANCE


def latency(receive_wall: float, ts: float, offset: float | None) -> float:
    """Transport latency of one heartbeat, with a skewed clock's offset taken out."""
    raw = receive_wall - ts
    if offset is not None and abs(offset) > TOLERANCE:
        return raw + offset
    return raw

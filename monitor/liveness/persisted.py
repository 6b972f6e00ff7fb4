"""A persisted device as the start-up load hands it to the engine: a plain tuple.

A restart of a million devices reads a million rows; a tuple per row (what a database
driver returns anyway) instead of an ORM object, a row dataclass and a snapshot each
is most of what makes the load take seconds instead of half a minute. The fields, in
order:

    device_id, state, since_wall, reason, session, last_seq, last_seen_wall,
    announced_interval, override_interval, device_class, in_maintenance, clock_offset

``state`` and ``reason`` are the stored words (:class:`State` and :class:`Reason`
members are such words too); a word this version does not know reads as unknown
state / no reason. Times are UTC epoch seconds. ``in_maintenance`` is truthy or not
(SQLite returns 0/1).
"""

from __future__ import annotations

from typing import Final

from monitor.liveness.states import Reason, State

PersistedDevice = tuple[
    str,  # device_id
    str,  # state
    float,  # since_wall
    str | None,  # reason
    str | None,  # session
    int | None,  # last_seq
    float | None,  # last_seen_wall
    float | None,  # announced_interval
    float | None,  # override_interval
    str,  # device_class
    object,  # in_maintenance
    float | None,  # clock_offset
]

# Index of the fields the shell reads too (config sync takes overrides and maintenance
# from the same rows).
DEVICE_ID: Final = 0
OVERRIDE: Final = 8
DEVICE_CLASS: Final = 9
IN_MAINTENANCE: Final = 10

# Dict lookups instead of the enum constructors: a million calls of State(value) cost
# seconds. StrEnum members hash and compare as their words, so members look up too.
STATE_OF: Final[dict[str, State]] = {s.value: s for s in State}
REASON_OF: Final[dict[str, Reason]] = {r.value: r for r in Reason}

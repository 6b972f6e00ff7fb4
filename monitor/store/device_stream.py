"""Every stored device as the start-up load needs it, streamed as plain tuples.

What a restart reads: a million rows, in chunks, each as a
:data:`monitor.liveness.persisted.PersistedDevice` tuple straight from the database
driver (asyncpg's server-side cursor, sqlite3's cursor). No ORM rows, no datetimes: the
database computes the epoch seconds. Going through SQLAlchemy's result rows, the
``UTCDateTime`` type's conversion and a row dataclass cost about 20 µs per device,
most of a 28-second start at a million devices.

``keep`` selects devices by id (a replica taking over some partitions loads only
their devices); the rows come in no particular order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.liveness.persisted import PersistedDevice
from monitor.store.database import translated

CHUNK: Final = 10_000

# Columns in PersistedDevice order. PostgreSQL: EXTRACT gives the exact numeric epoch,
# and its cast to float8 is the correctly rounded double -- the value Python's
# datetime.timestamp() gives for the same microseconds.
_POSTGRES_SELECT: Final = """
SELECT id, state, coalesce(extract(epoch FROM since)::float8, 0), reason, session, last_seq,
       extract(epoch FROM last_seen)::float8, announced_interval, interval_override,
       class_name, in_maintenance, clock_offset
FROM devices
"""

# SQLite keeps SQLAlchemy's naive-UTC text ("YYYY-MM-DD HH:MM:SS.ffffff"): whole
# microseconds as an integer here, divided in Python (exact, as timestamp() is).
# Padding with zeros reads a shorter or missing fraction right.
_SQLITE_SELECT: Final = """
SELECT id, state,
       CAST(strftime('%s', since) AS INTEGER) * 1000000
           + CAST(substr(since || '000000', 21, 6) AS INTEGER),
       reason, session, last_seq,
       CAST(strftime('%s', last_seen) AS INTEGER) * 1000000
           + CAST(substr(last_seen || '000000', 21, 6) AS INTEGER),
       announced_interval, interval_override, class_name, in_maintenance, clock_offset
FROM devices
"""


async def stream_devices(
    session: AsyncSession, *, chunk: int = CHUNK, keep: Callable[[str], bool] | None = None
) -> AsyncIterator[list[PersistedDevice]]:
    """Every stored device (or those whose id ``keep`` accepts), ``chunk`` at a time.

    Runs on the session's connection, inside its transaction. A database lost
    mid-stream surfaces as a store error.
    """
    # translated() inside: an async generator is not wrapped by translates_errors.
    with translated("load devices"):
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        if connection.dialect.name == "postgresql":
            chunks = _postgres_chunks(driver, chunk)
        else:
            chunks = _sqlite_chunks(driver, chunk)
        async for rows in chunks:
            kept = rows if keep is None else [row for row in rows if keep(row[0])]
            if kept:
                yield kept


async def _postgres_chunks(driver: Any, chunk: int) -> AsyncIterator[list[PersistedDevice]]:
    """asyncpg: a server-side cursor, ``chunk`` rows per round trip."""
    if driver.is_in_transaction():
        async for records in _prefetched(driver, chunk):
            yield records
        return
    # A cursor lives in a transaction; SQLAlchemy opens one only on its first statement.
    async with driver.transaction(readonly=True):
        async for records in _prefetched(driver, chunk):
            yield records


async def _prefetched(driver: Any, chunk: int) -> AsyncIterator[list[PersistedDevice]]:
    """The next chunk is fetched while the caller builds records from this one: the
    database's work and the round trip overlap the monitor's."""
    cursor = await driver.cursor(_POSTGRES_SELECT)
    pending = asyncio.ensure_future(cursor.fetch(chunk))
    try:
        while records := await pending:
            pending = asyncio.ensure_future(cursor.fetch(chunk))
            # asyncpg's Record unpacks and indexes like the tuple it stands for.
            yield cast(list[PersistedDevice], records)
    finally:
        if not pending.done():
            # Let it finish: a fetch cancelled mid-flight leaves the connection unusable
            # for the statements after it.
            with contextlib.suppress(Exception):
                await pending


async def _sqlite_chunks(driver: Any, chunk: int) -> AsyncIterator[list[PersistedDevice]]:
    """aiosqlite: sqlite3's cursor in its thread, the microseconds made seconds here."""
    cursor = await driver.execute(_SQLITE_SELECT)
    try:
        while rows := await cursor.fetchmany(chunk):
            yield [
                (
                    device_id,
                    state,
                    since / 1_000_000 if since is not None else 0.0,
                    reason,
                    session,
                    last_seq,
                    None if last_seen is None else last_seen / 1_000_000,
                    announced,
                    override,
                    class_name,
                    in_maintenance,
                    clock_offset,
                )
                for (
                    device_id,
                    state,
                    since,
                    reason,
                    session,
                    last_seq,
                    last_seen,
                    announced,
                    override,
                    class_name,
                    in_maintenance,
                    clock_offset,
                ) in rows
            ]
    finally:
        await cursor.close()

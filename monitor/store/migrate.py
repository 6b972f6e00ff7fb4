"""Schema migrations: run alembic programmatically against a URL the caller gives.

The alembic scripts live in the top-level ``migrations`` package (installed with
clawbeat), so ``clawbeat db upgrade`` works from a wheel as well as from a checkout.
``migrations/env.py`` takes the connection opened here; the URL never comes from an
ini file. All functions touching a database are coroutines: the monitor checks its
schema from inside its event loop, and the CLI wraps them in ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store.database import (
    create_engine_for,
    create_private_sqlite_file,
    sqlite_file,
    translated,
)
from monitor.store.errors import SchemaOutdated, SchemaTooNew, StoreError, StoreUnavailable

BASE: Final = "base"
# PostgreSQL advisory lock key of clawbeat's migrations (advisory locks are per
# database); any fixed number that other applications sharing it do not use.
MIGRATION_LOCK_KEY: Final = 0x636C_6177_6265_6174  # "clawbeat" in ASCII; fits a bigint
# How long a migration waits for another one to finish, seconds.
LOCK_WAIT: Final = 900.0
_LOCK_POLL: Final = 0.2


def migrations_dir() -> Path:
    """Where the alembic scripts are, whether clawbeat is installed or checked out."""
    spec = importlib.util.find_spec("migrations")
    if spec is None or spec.origin is None:
        raise StoreError("the clawbeat 'migrations' package is not installed")
    location = Path(spec.origin).parent
    # Another distribution could also ship a top-level 'migrations' package.
    if not (location / "env.py").is_file() or not (location / "versions").is_dir():
        raise StoreError(f"{location} is not clawbeat's migrations package")
    return location


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head() -> str:
    """The schema revision this clawbeat needs."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise StoreError("clawbeat's migrations package has no revisions")
    return revision


def known_revisions() -> list[str]:
    """Every revision this clawbeat can migrate to, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` forward to ``revision`` (default: the newest).

    A SQLite file that does not exist yet is created, private to its owner.
    """
    create_private_sqlite_file(url)
    await _run(url, f"upgrade to {revision}", lambda config: command.upgrade(config, revision))


async def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at ``url`` back to ``revision`` (``"base"``: drop everything).

    A SQLite file that does not exist is refused, not created empty.
    """
    if (path := sqlite_file(url)) is not None and not path.exists():
        raise StoreError(f"downgrade to {revision}: there is no database file {path.absolute()}")
    await _run(url, f"downgrade to {revision}", lambda config: command.downgrade(config, revision))


async def current(url: str | URL) -> str | None:
    """The revision the database is at, or ``None`` for a database never migrated.

    A SQLite file that does not exist is a database never migrated; it is not created.
    """
    if (path := sqlite_file(url)) is not None and not path.exists():
        return None
    engine = create_engine_for(url, for_migrations=True)
    try:
        with translated("read schema revision"):
            async with engine.connect() as connection:
                return await connection.run_sync(_current_revision)
    finally:
        await engine.dispose()


async def check_schema(url: str | URL) -> None:
    """Refuse a database whose schema is not exactly the one this clawbeat needs.

    Raises :class:`SchemaOutdated` (empty or older: ``clawbeat db upgrade`` fixes it)
    or :class:`SchemaTooNew` (migrated by a newer clawbeat).
    """
    at = await current(url)
    required = head()
    if at == required:
        return
    if at is None or at in known_revisions():
        raise SchemaOutdated(current=at, required=required)
    raise SchemaTooNew(current=at, required=required)


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _run(url: str | URL, operation: str, action: Callable[[Config], None]) -> None:
    # SQLite: every transaction starts by taking the write lock, waiting for it as long
    # as for PostgreSQL's advisory lock below.
    engine = create_engine_for(
        url,
        for_migrations=True,
        sqlite_write_lock=True,
        sqlite_busy_timeout_ms=int(LOCK_WAIT * 1000),
    )
    try:
        with translated(operation):
            # One transaction for the whole run: on PostgreSQL (and on SQLite, whose
            # migration connections run DDL transactionally) a failing step leaves
            # the schema exactly as it was.
            async with engine.begin() as connection:
                await _wait_for_lock(connection, operation)
                await connection.run_sync(_run_with_connection, action)
    except CommandError as exc:
        raise StoreError(f"{operation}: {exc}") from exc
    finally:
        await engine.dispose()


async def _wait_for_lock(connection: AsyncConnection, operation: str) -> None:
    """Take this database's migration lock (PostgreSQL) before alembic reads anything.

    Replicas starting together each run ``clawbeat db upgrade``: unserialised, they
    would all create the same tables at once and all but one fail on a catalog
    conflict. With the lock, the others wait, then read the version the first one
    committed and find nothing to do. A transaction-level advisory lock ends with the
    transaction, also when the process dies. Polled rather than awaited in one
    statement, which the connection's command timeout would cut short.
    """
    if connection.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE took the write lock already
    deadline = time.monotonic() + LOCK_WAIT
    lock = text("SELECT pg_try_advisory_xact_lock(:key)")
    while not await connection.scalar(lock, {"key": MIGRATION_LOCK_KEY}):
        if time.monotonic() > deadline:
            raise StoreUnavailable(
                f"another migration of this database has held its lock for {LOCK_WAIT:g} s",
                operation=operation,
            )
        await asyncio.sleep(_LOCK_POLL)


def _run_with_connection(connection: Connection, action: Callable[[Config], None]) -> None:
    config = alembic_config()
    # migrations/env.py uses this connection instead of opening its own.
    config.attributes["connection"] = connection
    action(config)

"""Engines, sessions and URL handling for PostgreSQL (asyncpg) and SQLite (aiosqlite).

One engine and one ``async_sessionmaker`` per process; the shell opens sessions and
commits, repository functions only run statements. Third-party errors are translated
to :mod:`monitor.store.errors` here, in :func:`translated`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from sqlalchemy import URL, event, make_url, pool
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from monitor.store.errors import DataRejected, InvalidDatabaseUrl, StoreError, StoreUnavailable

DEFAULT_URL: Final = "sqlite+aiosqlite:///./clawbeat.db"

_POSTGRES_NAMES: Final = frozenset({"postgresql", "postgres"})
# SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation): the
# database refused the content of a row. Retrying the same row can never succeed.
_DATA_SQLSTATE_CLASSES: Final = frozenset({"22", "23"})


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with the asyncio driver clawbeat uses for its backend.

    ``postgresql://`` and ``postgres://`` become ``postgresql+asyncpg://``; ``sqlite://``
    becomes ``sqlite+aiosqlite://``. A synchronous driver named explicitly is refused
    rather than silently replaced, so a typo in a deployment does not hide.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidDatabaseUrl(str(url), "not a database URL") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in _POSTGRES_NAMES:
        wanted = "asyncpg"
        backend = "postgresql"
    elif backend == "sqlite":
        wanted = "aiosqlite"
    else:
        raise InvalidDatabaseUrl(
            display_url(parsed), "clawbeat stores its data in PostgreSQL or SQLite"
        )
    if driver and driver != wanted:
        raise InvalidDatabaseUrl(
            display_url(parsed),
            f"driver {driver!r} is not used by clawbeat: write {backend}:// "
            f"or {backend}+{wanted}://",
        )
    return parsed.set(drivername=f"{backend}+{wanted}")


def display_url(url: str | URL) -> str:
    """``url`` with its password hidden, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def is_sqlite(url: str | URL) -> bool:
    return normalize_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names; ``None`` for PostgreSQL and in-memory databases.

    SQLite creates a missing file on connect, so whoever must not create one (anything
    but ``clawbeat db upgrade``) looks first.
    """
    parsed = normalize_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    if database.startswith("file:") and parsed.query.get("uri") == "true":
        # An SQLite URI filename: the path ends at the query string it carries.
        path = database.removeprefix("file:").split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)
    return Path(database)


def create_private_sqlite_file(url: str | URL) -> None:
    """Create the SQLite file of ``url`` readable by its owner only, if it is missing.

    It holds token hashes and alert channel URLs with their secrets; left to SQLite, the
    file would get 0644 under an ordinary umask. SQLite gives the ``-wal`` and ``-shm``
    files it creates later the permissions of the database file, so they are private
    too.
    """
    path = sqlite_file(url)
    if path is None:
        return
    with translated("create the database file"):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # an existing database keeps the mode its owner chose
            return
        os.close(fd)


def dump_json(value: object) -> str:
    """Serialise a JSON column value; NaN and infinities become ``null``.

    Python's ``json`` accepts ``NaN`` in device metrics, but PostgreSQL's jsonb refuses
    it, which would make a whole device row unwritable. JSON has no such numbers, so
    storing ``null`` is the faithful representation. jsonb refuses the NUL character
    (``\\u0000``) as well, so NULs in strings become U+FFFD.
    """
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, separators=(",", ":"))
    if "\\u0000" in text:
        return json.dumps(_finite(value), allow_nan=False, separators=(",", ":"))
    return text


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_finite(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def create_engine_for(
    url: str | URL,
    *,
    echo: bool = False,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    connect_timeout: float = 10.0,
    command_timeout: float = 60.0,
    sqlite_busy_timeout_ms: int = 5_000,
    application_name: str = "clawbeat",
    for_migrations: bool = False,
    sqlite_write_lock: bool = False,
) -> AsyncEngine:
    """Create the process's engine for ``url`` (any form :func:`normalize_url` accepts).

    PostgreSQL: a pool that pings connections on checkout, so a restarted server costs
    one failed ping per stale connection instead of a failed flush; timeouts so a hung
    server turns into an error the writer can retry. SQLite: WAL (readers never block
    the writer), a busy timeout, and foreign keys, set on every new connection because
    SQLite forgets pragmas per connection.

    ``for_migrations`` gives a pool-less engine whose SQLite connections run DDL inside
    real transactions and leave foreign keys off, as alembic's batch mode requires.
    ``sqlite_write_lock`` (with ``for_migrations``) begins them with ``BEGIN IMMEDIATE``:
    the write lock is taken first, waiting up to the busy timeout for whoever holds it,
    so two migrations never interleave.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(
            parsed,
            echo=echo,
            busy_timeout_ms=sqlite_busy_timeout_ms,
            for_migrations=for_migrations,
            write_lock=sqlite_write_lock,
        )
    connect_args: dict[str, Any] = {
        "timeout": connect_timeout,
        "command_timeout": command_timeout,
        "server_settings": {"application_name": application_name},
    }
    if for_migrations:
        return _create_async_engine(
            parsed,
            echo=echo,
            poolclass=pool.NullPool,
            connect_args=connect_args,
            json_serializer=dump_json,
        )
    return _create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        # Recycle well inside typical NAT/firewall idle limits; idle connections that
        # a middlebox dropped silently would otherwise hang until the TCP timeout.
        pool_recycle=1_800,
        connect_args=connect_args,
        json_serializer=dump_json,
    )


def _sqlite_engine(
    url: URL, *, echo: bool, busy_timeout_ms: int, for_migrations: bool, write_lock: bool
) -> AsyncEngine:
    in_memory = url.database in (None, "", ":memory:")
    engine = _create_async_engine(
        url,
        echo=echo,
        json_serializer=dump_json,
        **({"poolclass": pool.NullPool} if for_migrations and not in_memory else {}),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure_connection(dbapi_connection: Any, _record: object) -> None:
        if for_migrations:
            # The sqlite3 module would otherwise commit before every DDL statement,
            # so a migration failing halfway would leave a half-built schema.
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # First: switching a new file to WAL needs an exclusive lock, which a second
            # process starting at the same moment must wait for rather than fail on.
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives an application crash; only a power cut can lose
                # the last commits, which the write-behind buffer risks anyway.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA foreign_keys={'OFF' if for_migrations else 'ON'}")
        finally:
            cursor.close()

    if for_migrations:
        begin = "BEGIN IMMEDIATE" if write_lock else "BEGIN"

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

    return engine


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The process's one session factory; objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


# Errors raised while connecting bypass SQLAlchemy's wrapping: asyncpg and sqlite3
# raise their own, sockets raise OSError (which includes TimeoutError).
_THIRD_PARTY_ERRORS: Final = (
    SQLAlchemyError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
)


def is_data_error(exc: BaseException) -> bool:
    """True when ``exc`` says the data is unacceptable, so retrying cannot help."""
    if isinstance(exc, IntegrityError | DataError | sqlite3.IntegrityError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        # Raised before the statement reached the database: a bound value that a
        # column type could not convert.
        return isinstance(exc.orig, ValueError | TypeError)
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(original, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _DATA_SQLSTATE_CLASSES


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Turn driver and SQLAlchemy errors raised inside the block into store errors."""
    try:
        yield
    except StoreError:
        raise
    except _THIRD_PARTY_ERRORS as exc:
        message = _short(exc)
        if is_data_error(exc):
            raise DataRejected(message, operation=operation) from exc
        raise StoreUnavailable(message, operation=operation) from exc
    except (UnicodeError, RecursionError) as exc:
        # A value no driver can encode (a lone surrogate) or no JSON encoder can
        # serialise (absurd nesting) is the row's fault, not the database's: left
        # unwrapped, it would end the write-behind and, retained, every restart too.
        raise DataRejected(f"{type(exc).__name__}: {exc}"[:500], operation=operation) from exc


def _short(exc: BaseException) -> str:
    # SQLAlchemy appends the statement and every bound parameter; a batch of thousands
    # of rows would flood the log, so keep the first line only.
    text = str(exc.orig if isinstance(exc, DBAPIError) else exc) or type(exc).__name__
    return text.strip().splitlines()[0][:500]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def translates_errors(
    operation: str,
) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]], Callable[_P, Coroutine[Any, Any, _R]]]:
    """Decorate a repository coroutine so it raises only store errors."""

    def decorate(
        func: Callable[_P, Coroutine[Any, Any, _R]],
    ) -> Callable[_P, Coroutine[Any, Any, _R]]:
        @wraps(func)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with translated(operation):
                return await func(*args, **kwargs)

        return wrapper

    return decorate

"""pytest fixtures for real databases. Listed in ``tests/conftest.py``'s ``pytest_plugins``.

* ``pg_server`` (session): a PostgreSQL server to create databases on
  (``CLAWBEAT_TEST_DATABASE_URL``, else a throwaway cluster, else a container).
* ``database_url`` (function, parametrized ``sqlite`` / ``postgresql``): a fresh
  database for this test, already migrated to head.
* ``empty_database_url`` (same parameters): a fresh database never migrated.
* ``pg_cluster`` (function): a throwaway server this test may ``stop()`` and
  ``start()``; never the external URL.

No server at all is a failure naming what to install, never a skip.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.store import migrate
from monitor.store.database import create_engine_for, make_session_factory
from tests.harness.postgres import (
    PostgresServer,
    PostgresUnavailable,
    RestartableServer,
    obtain_cluster,
    obtain_server,
    run_coroutine,
)

DIALECTS = ("sqlite", "postgresql")
_TEMPLATE_DB = "clawbeat_template_head"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # asyncpg and aiomqtt are asyncio-only; without this, installing trio would run
    # every async test a second time on a backend they cannot work on.
    return "asyncio"


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The production engine and session factory for ``url``, disposed afterwards."""
    engine = create_engine_for(url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


def database_name(nodeid: str) -> str:
    """A PostgreSQL database name (at most 63 bytes) derived from a test's node id."""
    slug = re.sub(r"[^a-z0-9]+", "_", nodeid.rsplit("::", 1)[-1].lower()).strip("_")
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]  # unique per parametrization
    return f"t_{slug[:48]}_{digest}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = obtain_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


@pytest.fixture
def pg_cluster() -> Iterator[RestartableServer]:
    try:
        cluster = obtain_cluster()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def _pg_head_template(pg_server: PostgresServer) -> str:
    """A database migrated to head once per run; each test's database is a copy."""
    url = pg_server.create_database(_TEMPLATE_DB)
    run_coroutine(lambda: migrate.upgrade(url))
    return _TEMPLATE_DB


@pytest.fixture(scope="session")
def _sqlite_head_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "head.db"
    run_coroutine(lambda: migrate.upgrade(f"sqlite+aiosqlite:///{path}"))
    # The migration engine has been disposed, so WAL was checkpointed into the file;
    # a leftover -wal file would mean copying the file alone loses data.
    assert not Path(f"{path}-wal").exists(), "SQLite template still has a WAL file"
    return path


def _fresh_database(request: pytest.FixtureRequest, *, migrated: bool) -> Iterator[str]:
    dialect: str = request.param
    if dialect == "sqlite":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        path = tmp_path / "clawbeat.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_sqlite_head_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    # Requested lazily so a run selecting only SQLite tests never starts PostgreSQL.
    server: PostgresServer = request.getfixturevalue("pg_server")
    template: str | None = request.getfixturevalue("_pg_head_template") if migrated else None
    name = database_name(request.node.nodeid)
    url = server.create_database(name, template=template)
    yield url
    server.drop_database(name)


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test, migrated to head, on each dialect."""
    yield from _fresh_database(request, migrated=True)


@pytest.fixture(params=DIALECTS)
def empty_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, never-migrated database for this test, on each dialect."""
    yield from _fresh_database(request, migrated=False)

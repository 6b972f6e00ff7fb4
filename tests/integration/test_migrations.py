"""Migrations on real PostgreSQL and SQLite: up, down, up again; the schema check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from monitor.schema import metadata
from monitor.store import migrate, repository
from monitor.store.database import create_engine_for
from monitor.store.errors import SchemaOutdated, SchemaTooNew, StoreUnavailable
from tests.harness.db_fixtures import open_store
from tests.harness.postgres import run_coroutine

pytestmark = pytest.mark.anyio

TABLES = {
    "device_classes",
    "devices",
    "transitions",
    "heartbeat_rollups",
    "monitor_meta",
    "api_tokens",
    # 0003: alerting
    "channels",
    "alert_rules",
    "alerts",
    "alert_deliveries",
    "maintenance_windows",
    "mutes",
    # 0005: sources
    "sources",
    # 0006
    "forgotten_devices",
    # 0007: cluster
    "partition_leases",
    "lease_history",
    "cluster_members",
}
REPO_ROOT = Path(__file__).resolve().parents[2]


async def table_names(url: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


async def test_upgrade_downgrade_and_upgrade_again(empty_database_url: str) -> None:
    url = empty_database_url
    assert await migrate.current(url) is None
    assert await table_names(url) == set()

    await migrate.upgrade(url)
    assert await migrate.current(url) == migrate.head()
    assert await table_names(url) == TABLES
    async with open_store(url) as sessions, sessions() as session:
        classes = await repository.list_classes(session)
    assert [c.name for c in classes] == ["default"]
    assert classes[0].interval is None
    assert classes[0].missed_limit >= 1

    await migrate.downgrade(url, migrate.BASE)
    assert await migrate.current(url) is None
    assert await table_names(url) == set()

    await migrate.upgrade(url)
    assert await migrate.current(url) == migrate.head()
    assert await table_names(url) == TABLES


async def test_check_schema_refuses_an_unmigrated_database(empty_database_url: str) -> None:
    with pytest.raises(SchemaOutdated) as refused:
        await migrate.check_schema(empty_database_url)
    message = str(refused.value)
    assert "database schema is at nothing" in message
    assert f"this clawbeat needs {migrate.head()}" in message
    assert "run `clawbeat db upgrade`" in message
    assert refused.value.current is None
    assert refused.value.required == migrate.head()

    await migrate.upgrade(empty_database_url)
    await migrate.check_schema(empty_database_url)


async def test_check_schema_refuses_a_schema_from_a_newer_clawbeat(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()
    with pytest.raises(SchemaTooNew) as refused:
        await migrate.check_schema(database_url)
    assert "9999" in str(refused.value)
    assert "newer clawbeat" in str(refused.value)


async def test_models_and_migrations_agree(database_url: str) -> None:
    """A model change without a migration (or the reverse) fails here, on both dialects."""

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))

    engine = create_engine_for(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_check_schema_reports_an_unreachable_database() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    with pytest.raises(StoreUnavailable):
        await migrate.check_schema("postgresql://nobody@127.0.0.1:1/none")


def test_migrations_package_is_found_and_has_one_linear_history() -> None:
    location = migrate.migrations_dir()
    assert (location / "env.py").is_file()
    assert (location / "script.py.mako").is_file()
    revisions = migrate.known_revisions()
    assert revisions[0] == "0001"
    assert revisions[-1] == migrate.head()
    # Revision ids follow the file names, so "schema is at 0002" points at a file.
    for revision in revisions:
        assert list((location / "versions").glob(f"{revision}_*.py")), revision


def test_alembic_command_line_takes_the_url_from_x_argument(empty_database_url: str) -> None:
    """The developer path: ``alembic -c migrations/alembic.ini -x url=...`` (own engine)."""
    env = {k: v for k, v in os.environ.items() if k != "CLAWBEAT_DATABASE_URL"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(REPO_ROOT / "migrations" / "alembic.ini"),
            "-x",
            f"url={empty_database_url}",
            "upgrade",
            "head",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert run_coroutine(lambda: migrate.current(empty_database_url)) == migrate.head()

"""Several `clawbeat db upgrade` at once (replicas starting together): one migrates,
the others wait for it and find nothing to do."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest
from sqlalchemy import make_url

from monitor.store import migrate
from tests.harness.api import wait_for
from tests.harness.postgres import PostgresServer, run_coroutine

pytestmark = pytest.mark.anyio

UPGRADES = 3


@pytest.mark.parametrize("run", range(2))
def test_upgrades_started_together_all_succeed(empty_database_url: str, run: int) -> None:
    env = {**os.environ, "CLAWBEAT_DATABASE_URL": empty_database_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "db", "upgrade"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(UPGRADES)
    ]
    outcomes = [(*p.communicate(timeout=300), p.returncode) for p in processes]
    for stdout, stderr, code in outcomes:
        assert (code, stderr) == (0, ""), stdout
        assert "schema at head" in stdout
    assert run_coroutine(lambda: migrate.current(empty_database_url)) == migrate.head()


async def test_upgrade_waits_while_another_migration_holds_the_lock(
    pg_server: PostgresServer,
) -> None:
    """Deterministic: the lock is held here, and the upgrade is seen waiting for it."""
    name = "t_migration_lock_wait"
    url = pg_server.create_database(name)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrate.MIGRATION_LOCK_KEY)
        upgrade = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.cli", "db", "upgrade",
            env={**os.environ, "CLAWBEAT_DATABASE_URL": url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

        async def polling_the_lock() -> bool:
            queries = await holder.fetch(
                "SELECT query FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            return any("pg_try_advisory_xact_lock" in row["query"] for row in queries)

        await wait_for(polling_the_lock, timeout=60, what="the upgrade to ask for the lock")
        assert upgrade.returncode is None
        assert await migrate.current(url) is None  # nothing done while it waits
        await holder.execute("SELECT pg_advisory_unlock($1)", migrate.MIGRATION_LOCK_KEY)
        stdout, stderr = await asyncio.wait_for(upgrade.communicate(), timeout=120)
        code = await upgrade.wait()
    finally:
        await holder.close()
    assert (code, stderr) == (0, b""), stdout
    assert await migrate.current(url) == migrate.head()
    pg_server.drop_database(name)

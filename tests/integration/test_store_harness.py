"""The PostgreSQL test harness itself: names, restarts, and the message when none exists."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest

from tests.harness import db_fixtures, postgres
from tests.harness.postgres import PostgresUnavailable, RestartableServer, run_coroutine


def test_database_names_fit_postgres_and_differ_per_parametrization() -> None:
    long_id = "tests/integration/test_x.py::test_" + "very_long_name_" * 10 + "[asyncio-postgresql]"
    names = {db_fixtures.database_name(long_id), db_fixtures.database_name(long_id + "x")}
    assert len(names) == 2
    for name in names:
        assert len(name.encode()) <= 63
        assert name == name.lower()
        assert name.replace("_", "").isalnum()


def test_no_server_at_all_fails_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_binaries() -> None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl) in: nothing found"
        )

    monkeypatch.delenv(postgres.ENV_URL, raising=False)
    monkeypatch.setattr(postgres, "find_bindir", no_binaries)
    monkeypatch.setattr(postgres, "_docker_problem", lambda: "no Docker engine answers")
    with pytest.raises(PostgresUnavailable) as missing:
        postgres.obtain_server()
    message = str(missing.value)
    assert "apt-get install postgresql" in message
    assert postgres.ENV_URL in message
    assert "Docker" in message


def test_an_unusable_configured_url_is_reported_not_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(postgres.ENV_URL, "postgresql://nobody@127.0.0.1:1/postgres")
    monkeypatch.setattr(postgres, "_wait_until_accepting", _refuse)
    with pytest.raises(PostgresUnavailable, match=postgres.ENV_URL):
        postgres.obtain_server()


def _refuse(url: str, *, timeout: float) -> None:
    raise PostgresUnavailable(f"PostgreSQL at {url} did not come up")


def test_a_throwaway_cluster_keeps_its_url_across_a_restart(pg_cluster: RestartableServer) -> None:
    url = pg_cluster.create_database("restart_me")

    async def select_one() -> None:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
        await connection.execute("SELECT 1")
        await connection.close()

    run_coroutine(select_one)
    pg_cluster.stop()
    assert not pg_cluster.running
    with pytest.raises(ConnectionRefusedError):
        run_coroutine(select_one)
    pg_cluster.start()
    assert pg_cluster.running
    run_coroutine(select_one)

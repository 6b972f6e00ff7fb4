"""Ops commands against a database never migrated: one line that says so, no file made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.store import migrate
from tests.harness.postgres import run_coroutine

# Every command that reads or changes what the monitor stores (not `db`, `demo`, ...).
OPS_COMMANDS = [
    ("status",),
    ("watch",),
    ("token", "create", "--scope", "read"),
    ("token", "list"),
    ("classes", "list"),
    ("classes", "set", "critical", "--interval", "10"),
    ("devices", "set-interval", "pump-7", "5"),
    ("alerts", "list"),
    ("alerts", "deliveries"),
    ("channels", "list"),
    ("rules", "list"),
    ("maintenance", "list"),
    ("db", "prune", "--transitions-days", "30"),
]


def run_cli(*args: str, cwd: Path, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAWBEAT_DATABASE_URL"}
    if database_url is not None:
        env["CLAWBEAT_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "schema is at nothing" in lines[0]
    assert "run `clawbeat db upgrade`" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("command", OPS_COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_ops_command_outside_the_project_refuses_and_creates_no_file(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # The default database is ./clawbeat.db: a directory without one is "elsewhere".
    assert_refused(run_cli(*command, cwd=tmp_path, database_url=None))
    assert list(tmp_path.iterdir()) == []


def test_monitor_outside_the_project_refuses_and_creates_no_file(tmp_path: Path) -> None:
    result = run_cli(
        "monitor", "--http-bind", "", "--mqtt-url", "mqtt://127.0.0.1:9", cwd=tmp_path,
        database_url=None,
    )  # fmt: skip
    assert result.returncode != 0
    assert "schema is at nothing" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_ops_commands_refuse_an_empty_database(tmp_path: Path, empty_database_url: str) -> None:
    for command in (("status",), ("token", "create", "--scope", "admin"), ("classes", "list")):
        assert_refused(run_cli(*command, cwd=tmp_path, database_url=empty_database_url))
    # Nothing was created behind the refusal: the database is still never migrated.
    assert run_coroutine(lambda: migrate.current(empty_database_url)) is None


def test_db_current_and_downgrade_create_no_file(tmp_path: Path) -> None:
    current = run_cli("db", "current", cwd=tmp_path, database_url=None)
    assert current.returncode == 1
    assert "schema at nothing" in current.stdout
    downgrade = run_cli("db", "downgrade", "base", cwd=tmp_path, database_url=None)
    assert downgrade.returncode == 2
    assert f"there is no database file {tmp_path / 'clawbeat.db'}" in downgrade.stderr
    assert list(tmp_path.iterdir()) == []

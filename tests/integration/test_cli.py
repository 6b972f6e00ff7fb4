"""The ``clawbeat`` command as operators use it: help, broker tooling, db, classes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.passwords import list_users
from monitor.store import repository
from monitor.store.rows import RollupRow, TransitionRow
from tests.harness.db_fixtures import open_store
from tests.harness.store_queries import list_rollups

SUBCOMMANDS = [
    "monitor", "status", "watch", "devices", "classes", "db", "device", "simulate",
    "broker", "demo", "token", "alerts", "channels", "rules", "maintenance", "cluster",
]  # fmt: skip


def clawbeat(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             input_text: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=input_text,
        timeout=60,
        check=False,
    )


def test_help_lists_every_subcommand() -> None:
    result = clawbeat("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str) -> None:
    result = clawbeat(name, "--help")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) > 3


def test_broker_users_are_hashed_by_mosquitto_passwd(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    pw = tmp_path / "pw.txt"
    pw.write_text("hunter2-but-longer\n")
    result = clawbeat("broker", "add-user", "pump-7", "--password-file", str(pw),
                      "--file", str(passwd))  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = clawbeat("broker", "add-devices", "--prefix", "sim-", "--count", "3",
                      "--password", "x1", "--file", str(passwd))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list_users(passwd) == ["pump-7", "sim-00000", "sim-00001", "sim-00002"]
    text = passwd.read_text()
    assert "hunter2" not in text
    assert text.count("$7$") == 4  # mosquitto's PBKDF2-SHA512 format
    assert oct(passwd.stat().st_mode & 0o777) == "0o600"
    bad = clawbeat("broker", "add-devices", "--prefix", "bad/", "--count", "1",
                   "--password", "x", "--file", str(passwd))  # fmt: skip
    assert bad.returncode == 2
    assert "invalid device id" in bad.stderr


@pytest.mark.parametrize(
    "name",
    ["a/b", "a+b", "a#b", "$SYS", "../x", "a b", "quote'id", 'dq"id', "zero\u200bwidth",
     "<b>x</b>", "x" * 65, "", "colon:name", "pümpe"],
    ids=["slash", "plus", "hash", "sys", "dotdot-slash", "space", "quote", "double-quote",
         "zero-width", "html", "over-long", "empty", "colon", "non-ascii"],
)  # fmt: skip
def test_broker_add_user_refuses_names_that_are_not_device_ids(tmp_path: Path, name: str) -> None:
    passwd = tmp_path / "passwd"
    result = clawbeat("broker", "add-user", name, "--password", "pw-1", "--file", str(passwd))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("clawbeat broker: error: invalid username ")
    assert result.stderr.count("\n") == 1, result.stderr  # one line, control characters escaped
    assert not passwd.exists()


def test_broker_add_user_takes_every_valid_id(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    for name in ("monitor", "pump-7", "a.b_c-D", "x" * 64):
        result = clawbeat("broker", "add-user", name, "--password", "pw-1", "--file", str(passwd))
        assert result.returncode == 0, result.stderr
    assert list_users(passwd) == sorted(["monitor", "pump-7", "a.b_c-D", "x" * 64])


def test_broker_acl_for_another_root() -> None:
    result = clawbeat("broker", "acl", "--root", "fleet/v1")
    assert result.returncode == 0
    assert "pattern write fleet/v1/devices/%u/heartbeat" in result.stdout
    assert clawbeat("broker", "acl", "--root", "bad/#").returncode == 2


def test_broker_acl_gives_each_replica_the_monitors_rights() -> None:
    # Replicas of a cluster log in as users of their own (the broker binds client ids
    # to usernames): each needs the whole of the monitor's block.
    alone = clawbeat("broker", "acl").stdout
    block = alone[alone.index("user monitor\n") : alone.index("\n\n", alone.index("user monitor"))]
    result = clawbeat("broker", "acl", "--monitor-user", "monitor-a", "--monitor-user", "monitor-b")
    assert result.returncode == 0, result.stderr
    for user in ("monitor-a", "monitor-b"):
        assert block.replace("user monitor\n", f"user {user}\n") in result.stdout
    assert "user monitor\n" not in result.stdout


def test_db_classes_and_devices_on_sqlite(tmp_path: Path) -> None:
    env = {"CLAWBEAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"}
    current = clawbeat("db", "current", env=env)
    assert current.returncode == 1
    assert "this clawbeat needs" in current.stdout
    assert clawbeat("db", "upgrade", env=env).returncode == 0
    assert clawbeat("db", "current", env=env).returncode == 0
    saved = clawbeat("classes", "set", "critical", "--interval", "10", "--grace", "3", env=env)
    assert saved.returncode == 0, saved.stderr
    listed = clawbeat("classes", "list", env=env)
    assert "critical" in listed.stdout
    assert "default" in listed.stdout
    missing = clawbeat("devices", "set-interval", "no-such-device", "5", env=env)
    assert missing.returncode == 2
    assert "no-such-device" in missing.stderr
    hostile = clawbeat("devices", "set-interval", "a/b", "5", env=env)
    assert hostile.returncode == 2
    assert "invalid device id" in hostile.stderr
    status = clawbeat("status", env=env)
    assert status.returncode == 0
    assert "0 devices" in status.stdout


def test_db_prune_deletes_only_old_history(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    env = {"CLAWBEAT_DATABASE_URL": url}
    assert clawbeat("db", "upgrade", env=env).returncode == 0
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    async def seed() -> None:
        async with open_store(url) as sessions, sessions() as session:
            await repository.insert_transitions(
                session,
                rows=[
                    TransitionRow("d1", None, "online", now - timedelta(days=400)),
                    TransitionRow("d1", "online", "stale", now - timedelta(days=2)),
                ],
            )
            await repository.add_rollups(
                session,
                rows=[
                    RollupRow("d1", now - timedelta(days=40), count=3),
                    RollupRow("d1", now - timedelta(days=1), count=5),
                ],
            )
            await session.commit()

    async def remaining() -> tuple[int, int]:
        async with open_store(url) as sessions, sessions() as session:
            transitions = await repository.list_transitions(session, device_id="d1")
            rollups = await list_rollups(
                session,
                device_id="d1",
                since=now - timedelta(days=500),
                until=now + timedelta(days=1),
            )
            return len(transitions), len(rollups)

    asyncio.run(seed())
    assert clawbeat("db", "prune", env=env).returncode == 2
    assert clawbeat("db", "prune", "--rollups-days", "0.5", env=env).returncode == 2
    result = clawbeat("db", "prune", "--transitions-days", "365", "--rollups-days", "30", env=env)
    assert result.returncode == 0, result.stderr
    assert "removed 1 transitions and 1 rollup rows" in result.stdout
    assert asyncio.run(remaining()) == (1, 1)

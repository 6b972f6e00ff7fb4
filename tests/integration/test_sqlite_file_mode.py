"""The SQLite file `clawbeat db upgrade` creates is private: it holds secrets."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from tests.integration.test_cli import clawbeat


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def upgrade_with_umask(path: Path, umask: int) -> subprocess.CompletedProcess[str]:
    # An ordinary login shell's umask, whatever the test runner's is.
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "db", "upgrade"],
        capture_output=True,
        text=True,
        env={**os.environ, "CLAWBEAT_DATABASE_URL": f"sqlite+aiosqlite:///{path}"},
        umask=umask,
        timeout=60,
        check=False,
    )


def test_db_upgrade_creates_the_file_and_its_wal_private(tmp_path: Path) -> None:
    path = tmp_path / "clawbeat.db"
    result = upgrade_with_umask(path, 0o022)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert mode(path) == 0o600
    # What the monitor does: write in WAL mode, which creates -wal and -shm beside it.
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("INSERT INTO monitor_meta (key, value, updated_at) "
                           "VALUES ('k', 'v', CURRENT_TIMESTAMP)")  # fmt: skip
        connection.commit()
        for suffix in ("-wal", "-shm"):
            sidecar = Path(f"{path}{suffix}")
            assert sidecar.exists(), suffix
            assert mode(sidecar) == 0o600, suffix
    finally:
        connection.close()
    # A second upgrade of the same file changes nothing.
    again = upgrade_with_umask(path, 0o022)
    assert again.returncode == 0, again.stderr
    assert mode(path) == 0o600


def test_db_upgrade_warns_about_a_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    assert upgrade_with_umask(path, 0o022).returncode == 0
    path.chmod(0o644)  # made by an earlier clawbeat, or copied
    result = upgrade_with_umask(path, 0o022)
    assert result.returncode == 0, result.stderr
    assert f"chmod 600 {path}" in result.stderr
    assert mode(path) == 0o644  # the owner decides; it is only pointed out


def test_db_upgrade_names_a_missing_directory(tmp_path: Path) -> None:
    result = clawbeat("db", "upgrade", "--database-url", f"sqlite:///{tmp_path}/no/such/c.db")
    assert result.returncode == 2
    assert "No such file or directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""Output piped into a reader that stops early (``clawbeat status | head -1``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import clawbeat

COMMANDS = [
    ("status",),
    ("watch", "--interval", "0.1"),
    ("alerts", "deliveries"),
    ("alerts", "list"),
    ("token", "list"),
    ("token", "list", "--json"),
    ("classes", "list"),
]


@pytest.fixture(scope="module")
def migrated_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("pipes") / "c.db"
    env = {"CLAWBEAT_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    upgraded = clawbeat("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    # A token, so that `token list --json` has a line to write too.
    assert clawbeat("token", "create", "--scope", "read", env=env).returncode == 0
    return env


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_a_reader_gone_ends_the_command_quietly(
    migrated_env: dict[str, str], command: tuple[str, ...], tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, **migrated_env},
    )
    assert process.stdout is not None
    # The reader is gone before the first write: every write the command makes fails
    # with EPIPE, as after `head -1` has read its line and exited.
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert stderr.decode() == ""
    # What a shell reports for a tool that SIGPIPE ended (`set -o pipefail` sees it).
    assert process.returncode == 141


def test_head_reads_the_first_line(migrated_env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        f"{sys.executable} -m monitor.cli status | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **migrated_env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("0 devices")
    assert "Error" not in result.stderr

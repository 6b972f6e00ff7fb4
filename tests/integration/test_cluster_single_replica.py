"""A second monitor on one SQLite file is refused with one line; a crash frees the file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cluster.errors import SecondReplica
from monitor.cluster.single_replica import claim_single_replica

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from monitor.cluster.single_replica import claim_single_replica
lock = claim_single_replica(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_replica_on_sqlite_is_refused_until_the_first_dies(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'clawbeat.db'}"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "held"
        with pytest.raises(SecondReplica) as refused:
            claim_single_replica(url)
        message = str(refused.value)
        assert "\n" not in message
        assert f"another clawbeat monitor (pid {first.pid}) already runs on" in message
        assert "SQLite is single-replica: use PostgreSQL" in message
    finally:
        first.send_signal(signal.SIGKILL)  # a crash leaves no stale lock behind
        first.wait()
    lock = claim_single_replica(url)
    assert lock is not None
    with pytest.raises(SecondReplica):
        claim_single_replica(url)  # also within one process
    lock.release()
    again = claim_single_replica(url)
    assert again is not None
    with again:
        pass
    final = claim_single_replica(url)  # leaving the block released it
    assert final is not None
    final.release()


def test_postgres_and_in_memory_sqlite_need_no_lock() -> None:
    assert claim_single_replica("postgresql://u@127.0.0.1/clawbeat") is None
    assert claim_single_replica("sqlite+aiosqlite:///:memory:") is None

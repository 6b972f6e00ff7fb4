"""SQLite is single-replica: a second monitor on the same SQLite file is refused at start.

The first monitor holds an exclusive ``flock`` on ``<database>.monitor.lock`` beside the
database file for as long as it runs. The kernel drops the lock when the process ends
in any way (SIGKILL and crashes included), so there is no stale lock to clean up, which
a lease row with an expiry could not promise without a wait. The file holds the
holder's pid, for the message. ``flock`` does not reach across hosts on every network
filesystem; SQLite on such a filesystem is unsafe anyway.

PostgreSQL needs no such lock (leases decide who acts); in-memory SQLite is private
to its process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from monitor.cluster.errors import SecondReplica
from monitor.store.database import display_url, sqlite_file


class ReplicaLock:
    """The held lock; :meth:`release` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".monitor.lock")


def claim_single_replica(database_url: str) -> ReplicaLock | None:
    """Hold the SQLite file's monitor lock, or raise :class:`SecondReplica`.

    Returns ``None`` for PostgreSQL and in-memory SQLite, where there is nothing to hold.
    """
    database = sqlite_file(database_url)
    if database is None:
        return None
    path = lock_path(database)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = b""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 32, 0).strip()
        os.close(fd)
        pid = f" (pid {holder.decode(errors='replace')})" if holder else ""
        raise SecondReplica(
            f"another clawbeat monitor{pid} already runs on {display_url(database_url)}; "
            "SQLite is single-replica: use PostgreSQL to run several (docs/cluster.md)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return ReplicaLock(path, fd)

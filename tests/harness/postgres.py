"""PostgreSQL servers for tests and benchmarks.

Three sources, in this order:

1. ``CLAWBEAT_TEST_DATABASE_URL``: a server someone else runs (CI service, laptop). Used
   by :func:`obtain_server` only; it is never stopped, so fault tests never get it.
2. A throwaway cluster built from the local PostgreSQL binaries (``initdb`` into a temp
   dir, a free port, its own socket dir, fsync off, trust auth). When running as root
   the server runs as the ``postgres`` user, because ``initdb`` refuses root.
3. A ``postgres`` container through testcontainers, where a Docker engine answers.

If none works, :class:`PostgresUnavailable` says what to install. Tests turn it into a
failure, never a skip: a database test that silently does not run is a test that lies.

Outside pytest (benchmarks)::

    with obtain_server() as server:
        url = server.create_database("bench")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import docker  # type: ignore[import-untyped]  # comes with testcontainers
from sqlalchemy import make_url

from broker.runner import free_port

try:
    from testcontainers.community.postgres import PostgresContainer
except ImportError:  # testcontainers before 4.14 had no 'community' package
    from testcontainers.postgres import PostgresContainer

ENV_URL: Final = "CLAWBEAT_TEST_DATABASE_URL"
ENV_BINDIR: Final = "CLAWBEAT_PG_BINDIR"
CONTAINER_IMAGE: Final = "postgres:15-alpine"
_SUPERUSER: Final = "postgres"
_START_TIMEOUT: Final = 60

_T = TypeVar("_T")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be had; the message says how to provide one."""


class PostgresServer(Protocol):
    """A server the tests may create databases on."""

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql+asyncpg://`` URL of database ``dbname``."""
        ...

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create (or re-create) database ``name`` and return its URL."""
        ...

    def drop_database(self, name: str) -> None: ...

    def close(self) -> None:
        """Release the server (stop and delete it, if it was made for the tests)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class RestartableServer(PostgresServer, Protocol):
    """A server the tests own and may stop and start again (on the same port)."""

    def start(self) -> None: ...

    def stop(self, *, mode: str = "fast") -> None: ...

    @property
    def running(self) -> bool: ...


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside an event loop.

    Fixtures and benchmarks are synchronous but may be called while a loop is running
    in this thread, where ``asyncio.run`` refuses; a private thread has no loop.
    """
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(factory()))
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="clawbeat-pg-admin")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _wait_until_accepting(url: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            run_coroutine(lambda: _execute(url, "SELECT 1"))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"PostgreSQL at {url} did not come up: {exc}") from exc
            time.sleep(0.2)
        else:
            return


class _ServerBase:
    """Database administration shared by every kind of server."""

    def url(self, dbname: str = "postgres") -> str:
        raise NotImplementedError

    def create_database(self, name: str, *, template: str | None = None) -> str:
        # DROP ... WITH (FORCE) (PostgreSQL 13+) so a database left by a crashed run,
        # or still held by a pool, never blocks the next one.
        create = f"CREATE DATABASE {quote_ident(name)}"
        if template is not None:
            create += f" TEMPLATE {quote_ident(template)}"
        run_coroutine(
            lambda: _execute(
                self.url(),
                f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)",
                create,
            )
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        run_coroutine(
            lambda: _execute(
                self.url(), f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"
            )
        )

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ExternalServer(_ServerBase):
    """A server at a URL someone else runs; only the databases made here are dropped."""

    def __init__(self, url: str) -> None:
        self._url = make_url(url).set(drivername="postgresql+asyncpg")
        self._created: set[str] = set()
        _wait_until_accepting(self.url(), timeout=10)

    def url(self, dbname: str | None = None) -> str:
        target = self._url if dbname is None else self._url.set(database=dbname)
        return target.render_as_string(hide_password=False)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        url = super().create_database(name, template=template)
        self._created.add(name)
        return url

    def drop_database(self, name: str) -> None:
        super().drop_database(name)
        self._created.discard(name)

    def close(self) -> None:
        for name in sorted(self._created):
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                self.drop_database(name)


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    if configured := os.environ.get(ENV_BINDIR):
        candidates.append(Path(configured))
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))

    def version(path: Path) -> tuple[int, ...]:
        digits = path.parent.name.split(".")
        return tuple(int(d) for d in digits if d.isdigit())

    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return candidate
    tried = ", ".join(str(c) for c in candidates) or "nothing found"
    raise PostgresUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) in: {tried}")


class ThrowawayCluster(_ServerBase):
    """A private PostgreSQL cluster in a temp dir, deleted by :meth:`close`.

    The port is fixed at creation, so URLs stay valid across :meth:`stop` and
    :meth:`start` (fault tests restart the server under a running writer).

    ``crash_safe`` turns ``synchronous_commit`` back on: with it off, a commit is
    acknowledged before its WAL is written, so ``stop(mode="immediate")`` (a crash)
    would lose acknowledged commits and a fault test could not tell that loss from a
    bug. ``fsync`` stays off either way: only the server processes crash, not the OS.
    """

    def __init__(
        self, *, bindir: Path | None = None, port: int | None = None, crash_safe: bool = False
    ) -> None:
        self.bindir = bindir or find_bindir()
        self.crash_safe = crash_safe
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="clawbeat-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_file = self.root / "postgres.log"
        self._user: tuple[int, int] | None = None
        self._running = False
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            try:
                entry = pwd.getpwnam(_SUPERUSER)
            except KeyError:
                shutil.rmtree(self.root, ignore_errors=True)
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user to run the server as"
                ) from None
            self._user = (entry.pw_uid, entry.pw_gid)
        self.socket_dir.mkdir()
        if self._user is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, *self._user)
        # Stops the server and deletes the directory even if close() is never called
        # (a test run interrupted with Ctrl-C); runs at interpreter exit at the latest.
        self._finalizer = weakref.finalize(
            self, _stop_and_remove, self._pg_ctl_command(), self.data_dir, self.root, self._user
        )
        try:
            self._init()
            self._first_start(explicit_port=port is not None)
        except BaseException:
            self.close()
            raise

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+asyncpg://{_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def running(self) -> bool:
        return self._running

    def _pg_ctl_command(self) -> list[str]:
        return [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir)]

    def _run(self, args: list[str], *, what: str) -> None:
        result = subprocess.run(
            args,
            cwd=self.root,
            user=self._user[0] if self._user else None,
            group=self._user[1] if self._user else None,
            extra_groups=[] if self._user else None,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT + 30,
            check=False,
        )
        if result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            log = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise PostgresUnavailable(
                f"{what} failed ({result.returncode}): {output}"
                + (f"\nserver log:\n{log}" if log else "")
            )

    def _init(self) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                _SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            what="initdb",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            # Durability is worthless for throwaway data; these make DDL-heavy tests fast.
            "fsync": "off",
            "synchronous_commit": "on" if self.crash_safe else "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# clawbeat test cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        if self._running:
            return
        self._run(
            [
                *self._pg_ctl_command(),
                "-l",
                str(self.log_file),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                str(_START_TIMEOUT),
                "start",
            ],
            what="pg_ctl start",
        )
        self._running = True
        _wait_until_accepting(self.url(), timeout=_START_TIMEOUT)

    def _first_start(self, *, explicit_port: bool) -> None:
        # The port is given on pg_ctl's command line rather than in postgresql.conf so
        # that a port taken between free_port() and the bind can be swapped for another.
        for attempt in range(3):
            try:
                self.start()
            except PostgresUnavailable as exc:
                taken = "could not bind" in str(exc) or "already in use" in str(exc)
                if explicit_port or not taken or attempt == 2:
                    raise
                self.port = free_port()
            else:
                return

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server: ``fast`` disconnects clients, ``immediate`` is a crash."""
        if not self._running:
            return
        self._run([*self._pg_ctl_command(), "-m", mode, "-w", "stop"], what="pg_ctl stop")
        self._running = False

    def close(self) -> None:
        self._running = False
        self._finalizer()


def _stop_and_remove(
    pg_ctl: list[str], data_dir: Path, root: Path, user: tuple[int, int] | None
) -> None:
    if (data_dir / "postmaster.pid").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [*pg_ctl, "-m", "immediate", "-w", "stop"],
                cwd=root,
                user=user[0] if user else None,
                group=user[1] if user else None,
                extra_groups=[] if user else None,
                capture_output=True,
                timeout=60,
                check=False,
            )
    shutil.rmtree(root, ignore_errors=True)


class ContainerCluster(_ServerBase):
    """PostgreSQL in a Docker container (testcontainers), on a fixed host port."""

    def __init__(self, *, image: str = CONTAINER_IMAGE, crash_safe: bool = False) -> None:
        self.port = free_port()
        synchronous_commit = "on" if crash_safe else "off"
        self._password = "clawbeat"
        self._container = (
            PostgresContainer(
                image, username=_SUPERUSER, password=self._password, dbname="postgres", driver=None
            )
            .with_bind_ports(5432, self.port)
            .with_command(
                "postgres -c fsync=off -c full_page_writes=off "
                f"-c synchronous_commit={synchronous_commit}"
            )
        )
        self._container.start()
        self._running = True
        _wait_until_accepting(self.url(), timeout=_START_TIMEOUT)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+asyncpg://{_SUPERUSER}:{self._password}@127.0.0.1:{self.port}/{dbname}"

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._running:
            return
        self._container.get_wrapped_container().start()
        self._running = True
        _wait_until_accepting(self.url(), timeout=_START_TIMEOUT)

    def stop(self, *, mode: str = "fast") -> None:
        if not self._running:
            return
        wrapped = self._container.get_wrapped_container()
        if mode == "immediate":
            wrapped.kill()
        else:
            wrapped.stop(timeout=30)
        self._running = False

    def close(self) -> None:
        self._running = False
        self._container.stop()


def _docker_problem() -> str | None:
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # docker raises many unrelated types for "no engine"
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return None


_HOW_TO_FIX: Final = (
    "Provide one of: the PostgreSQL server binaries (`apt-get install postgresql`; "
    f"set {ENV_BINDIR} if they are not in /usr/lib/postgresql/*/bin or on PATH), "
    f"{ENV_URL}=postgresql://USER:PASSWORD@HOST:PORT/postgres (a role allowed to CREATE "
    "DATABASE), or a running Docker engine."
)


def obtain_cluster(*, crash_safe: bool = True) -> RestartableServer:
    """A server this process owns and may stop: a local throwaway cluster or a container.

    Crash-safe by default, because the reason to own a server is to stop or crash it.
    """
    problems: list[str] = []
    try:
        return ThrowawayCluster(crash_safe=crash_safe)
    except PostgresUnavailable as exc:
        problems.append(f"local binaries: {exc}")
    if problem := _docker_problem():
        problems.append(f"testcontainers: {problem}")
    else:
        try:
            return ContainerCluster(crash_safe=crash_safe)
        except Exception as exc:  # image pull or container start: any failure means "no"
            problems.append(f"testcontainers: {type(exc).__name__}: {exc}")
    raise PostgresUnavailable(
        "no PostgreSQL server for the tests.\n  tried "
        + "\n  tried ".join(problems)
        + "\n"
        + _HOW_TO_FIX
    )


def obtain_server() -> PostgresServer:
    """Any server to create test databases on: the configured URL first."""
    if url := os.environ.get(ENV_URL):
        try:
            return ExternalServer(url)
        except PostgresUnavailable as exc:
            raise PostgresUnavailable(f"{ENV_URL} is set but unusable: {exc}") from exc
    try:
        return obtain_cluster(crash_safe=False)
    except PostgresUnavailable as exc:
        raise PostgresUnavailable(f"{exc}\n({ENV_URL} is not set.)") from exc

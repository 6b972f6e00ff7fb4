"""Run a Mosquitto process from the project's configuration.

Used by ``clawbeat broker run`` (local use, the quickstart), by the test harness and by
the benchmarks, so all three run the broker exactly as configured in ``mosquitto.conf``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import IO, Self
from urllib.parse import quote

from broker.acl import render_acl
from broker.certs import DevCerts, generate_dev_certs
from broker.config import render_config
from broker.errors import BrokerToolError
from broker.passwords import add_users
from device_client.protocol import DEFAULT_TOPIC_ROOT


def free_port(host: str = "127.0.0.1", *, exclude: Collection[int] = ()) -> int:
    """A TCP port nothing listens on now, preferably outside the ephemeral range.

    Ports the kernel hands out for ``bind(0)`` come from the same range as the source
    ports of outgoing connections: on a busy machine (thousands of simulated devices) an
    outgoing connection can take such a port between this check and the server binding
    it. Below 32768 only listeners compete. ``exclude`` keeps two calls in a row (before
    either server binds) from returning the same port.
    """
    for candidate in [*random.sample(range(20_000, 32_000), 50), 0]:
        if candidate in exclude:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise BrokerToolError(f"no free TCP port on {host}")


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (a bind would fail).

    SO_REUSEADDR as servers set it: a port with connections of a stopped server still in
    TIME_WAIT is free, one with a listener is not.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise BrokerToolError(f"cannot bind {host}:{port}: {exc.strerror}") from exc
    return False


def default_template() -> Path:
    """``mosquitto.conf`` in the working directory, else the one beside this package."""
    here = Path.cwd() / "mosquitto.conf"
    if here.exists():
        return here
    repo = Path(__file__).resolve().parent.parent / "mosquitto.conf"
    if repo.exists():
        return repo
    raise BrokerToolError("mosquitto.conf not found: run from the clawbeat checkout or pass it")


def mosquitto_binary() -> str:
    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if exe is None:
        raise BrokerToolError(
            "mosquitto not found: install Mosquitto (Debian: apt-get install mosquitto "
            "mosquitto-clients)"
        )
    return exe


class BrokerProcess:
    """One Mosquitto process with its own run directory.

    The run directory holds the rendered config, password file, ACL, dev TLS material,
    persistence, the pid file and the log; nothing outside it is touched.
    """

    def __init__(
        self,
        *,
        run_dir: Path,
        port: int | None = None,
        tls_port: int | None = None,
        template: Path | None = None,
        topic_root: str = DEFAULT_TOPIC_ROOT,
        host: str = "127.0.0.1",
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.tls_port = tls_port if tls_port is not None else free_port(host, exclude=(self.port,))
        self.template = template or default_template()
        self.topic_root = topic_root
        self.conf_path = self.run_dir / "mosquitto.conf"
        self.passwd_path = self.run_dir / "passwd"
        self.acl_path = self.run_dir / "acl"
        self.data_dir = self.run_dir / "data"
        self.log_path = self.run_dir / "mosquitto.log"
        # Names the process to SIGHUP after changing users by hand (README, "Wiring a
        # device"); Mosquitto writes it at start and removes it on a clean exit.
        self.pid_path = self.run_dir / "mosquitto.pid"
        self.certs = DevCerts.in_dir(self.run_dir / "tls")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def prepare(self, users: Mapping[str, str]) -> None:
        """Write ACL, users, dev certificates (once) and the rendered config."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.acl_path.write_text(render_acl(self.topic_root))
        add_users(self.passwd_path, users)
        if not self.certs.exist():
            generate_dev_certs(self.certs.ca_cert.parent)
        text = render_config(
            self.template.read_text(),
            ports=[self.port, self.tls_port],
            bind=self.host,
            paths={
                "password_file": self.passwd_path,
                "acl_file": self.acl_path,
                "persistence_location": self.data_dir,
                "cafile": self.certs.ca_cert,
                "certfile": self.certs.server_cert,
                "keyfile": self.certs.server_key,
            },
            # Started as root, Mosquitto drops to the 'mosquitto' user and could no longer
            # read the run directory; run it as whoever owns the run directory instead.
            extra=[f"user {_current_user()}", f"pid_file {self.pid_path}"],
        )
        self.conf_path.write_text(text)

    def add_users(self, users: Mapping[str, str]) -> None:
        """Add users and make a running broker pick them up."""
        add_users(self.passwd_path, users)
        self.reload()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        # Checked first: with another server on the port, Mosquitto exits at once but the
        # readiness probe below would be answered by that other server.
        for port in (self.port, self.tls_port):
            if port_in_use(self.host, port):
                raise BrokerToolError(
                    f"port {port} on {self.host} is in use: is another broker running? "
                    "(choose other ports)"
                )
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.run_dir,
            # Its own process group: Ctrl-C in a terminal must not kill the broker before
            # its owner has stopped the clients that still need it for a clean shutdown.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerToolError(
                    f"mosquitto exited with {self._proc.returncode}; log:\n{self.log_tail()}"
                )
            if _accepts(self.host, self.port) and _accepts(self.host, self.tls_port):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerToolError(f"mosquitto did not listen within {timeout}s:\n{self.log_tail()}")

    def reload(self) -> None:
        # Mosquitto re-reads the password file and ACL on SIGHUP without dropping clients.
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGHUP)
            # The reload is asynchronous; give the broker a moment to apply it.
            time.sleep(0.2)

    def terminate(self, *, force: bool = False) -> None:
        """Ask the broker to exit (SIGTERM; SIGKILL with ``force``) without waiting.

        Safe in a signal handler: :meth:`wait` may be blocked in ``waitpid`` underneath,
        holding the Popen's wait lock, so a handler that waited too would never return.
        """
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL if force else signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Stop the broker abruptly (no persistence save, no clean shutdown)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def url(self, user: str, password: str, *, tls: bool = False) -> str:
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.port)
        return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{port}"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _current_user() -> str:
    import pwd  # noqa: PLC0415 - POSIX only, and only needed here

    return pwd.getpwuid(os.getuid()).pw_name


def _accepts(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0

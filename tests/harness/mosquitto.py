"""A real Mosquitto for tests and benchmarks, started from the project's mosquitto.conf.

The config is rendered to a free port and a temp directory by the project's own broker
tooling, and users are created through it (hashed by ``mosquitto_passwd``), so the tests
exercise the authentication, ACL and persistence settings operators deploy.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from broker.acl import MONITOR_USER, OPS_USER, render_acl
from broker.certs import generate_dev_certs
from broker.errors import BrokerToolError
from broker.passwords import mosquitto_passwd
from broker.runner import BrokerProcess, mosquitto_binary

REPO = Path(__file__).resolve().parents[2]

INSTALL_HINT = (
    "the tests need Mosquitto: install it with `apt-get install mosquitto mosquitto-clients` "
    "(or run `.ci/run`, which installs it)"
)


def check_mosquitto_installed() -> str | None:
    """Return a message naming what to install, or None when Mosquitto is usable."""
    try:
        mosquitto_binary()
        mosquitto_passwd()
    except BrokerToolError as exc:
        return f"{exc}; {INSTALL_HINT}"
    return None


_CERTS: Path | None = None


def _shared_certs() -> Path:
    """Dev TLS material made once per test process (openssl RSA keygen takes ~1 s)."""
    global _CERTS  # noqa: PLW0603 - a per-process cache
    if _CERTS is None:
        directory = Path(tempfile.mkdtemp(prefix="clawbeat-test-tls-"))
        generate_dev_certs(directory)
        _CERTS = directory
    return _CERTS


class TestBroker:
    """A running broker plus the credentials of its service users."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, run_dir: Path) -> None:
        self.process = BrokerProcess(run_dir=run_dir, template=REPO / "mosquitto.conf")
        self.monitor_user = MONITOR_USER
        self.monitor_password = secrets.token_urlsafe(12)
        self.ops_user = OPS_USER
        self.ops_password = secrets.token_urlsafe(12)
        self.device_passwords: dict[str, str] = {}
        # Further users with the monitor's rights: the replicas of a cluster.
        self.replica_passwords: dict[str, str] = {}
        shutil.copytree(_shared_certs(), self.process.certs.ca_cert.parent, dirs_exist_ok=True)
        self.process.prepare(
            {self.monitor_user: self.monitor_password, self.ops_user: self.ops_password}
        )

    @property
    def host(self) -> str:
        return self.process.host

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def tls_port(self) -> int:
        return self.process.tls_port

    @property
    def ca_file(self) -> Path:
        return self.process.certs.ca_cert

    @property
    def client_cert(self) -> Path:
        return self.process.certs.client_cert

    @property
    def client_key(self) -> Path:
        return self.process.certs.client_key

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def url(
        self, user: str | None = None, password: str | None = None, *, tls: bool = False
    ) -> str:
        """A broker URL; with no user, the monitor's."""
        if user is None:
            user, password = self.monitor_user, self.monitor_password
        elif password is None:
            password = (
                self.device_passwords.get(user)
                or self.replica_passwords.get(user)
                or {
                    self.ops_user: self.ops_password,
                    self.monitor_user: self.monitor_password,
                }[user]
            )
        return self.process.url(user, password, tls=tls)

    def add_device(self, device_id: str, password: str | None = None) -> str:
        password = password or secrets.token_urlsafe(12)
        self.add_devices([device_id], password)
        return password

    def add_devices(self, ids: Iterable[str], password: str) -> None:
        users = dict.fromkeys(ids, password)
        self.device_passwords.update(users)
        self.process.add_users(users)

    def add_monitor_users(self, names: Iterable[str]) -> None:
        """Users with the monitor's rights, one per replica of a cluster.

        The broker binds the client id to the username, so replicas sharing one user
        would take each other's session over; the ACL is rendered by the project's own
        ``render_acl`` with every monitor user. A running broker reloads at once.
        """
        users = {name: secrets.token_urlsafe(12) for name in names}
        self.replica_passwords.update(users)
        monitors = [self.monitor_user, *self.replica_passwords]
        self.process.acl_path.write_text(render_acl(self.process.topic_root, monitor_user=monitors))
        self.process.add_users(users)

    def log_publishes(self) -> None:
        """Log every packet (``log_type debug``), so a test can tell who published what.

        Call before :meth:`start`; the lines name each publisher's client id.
        """
        with self.process.conf_path.open("a") as conf:
            conf.write("\nlog_type debug\n")

    def allow(
        self,
        user: str,
        *,
        write: Iterable[str] = (),
        read: Iterable[str] = (),
        password: str | None = None,
    ) -> None:
        """Let ``user`` (created unless it exists) write and read these topics.

        For fleets in other conventions, whose topics the protocol v1 ACL knows nothing
        of. A running broker reloads at once; ``url(user)`` has the password.
        """
        lines = [f"\nuser {user}"]
        lines += [f"topic write {t}" for t in write]
        lines += [f"topic read {t}" for t in read]
        with self.process.acl_path.open("a") as acl:
            acl.write("\n".join(lines) + "\n")
        if user in (self.monitor_user, self.ops_user) or user in self.device_passwords:
            self.process.reload()
        else:
            self.add_device(user, password)

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def restart(self) -> None:
        self.process.restart()


@contextlib.contextmanager
def running_broker(run_dir: Path) -> Iterator[TestBroker]:
    """Start a broker outside pytest (benchmarks); stopped on exit."""
    missing = check_mosquitto_installed()
    if missing:
        raise RuntimeError(missing)
    broker = TestBroker(run_dir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

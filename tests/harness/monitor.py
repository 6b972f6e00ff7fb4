"""Run the real monitor (``python -m monitor.cli monitor``) as a process for tests.

Tests drive it from outside — devices, the broker, SIGKILL — and observe it the way ops
do: retained status topics on the broker and rows in the database.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store import reports, repository
from monitor.store.database import create_engine_for, make_session_factory
from tests.harness.mosquitto import TestBroker
from tests.harness.postgres import run_coroutine
from tests.mqtt_helpers import MqttProbe, Received

_T = TypeVar("_T")
_REPLICAS = itertools.count(1)


class BrokerLogins(Protocol):
    """What the monitor harness needs of a broker: its URLs with the service logins."""

    @property
    def ops_user(self) -> str: ...

    def url(
        self, user: str | None = None, password: str | None = None, *, tls: bool = False
    ) -> str: ...


class MonitorProcess:
    """One monitor process; ``start()`` waits until its presence is online."""

    __test__ = False

    def __init__(
        self,
        broker: BrokerLogins,
        database_url: str,
        log_path: Path,
        **settings: object,
    ) -> None:
        self.broker = broker
        self.database_url = database_url
        self.log_path = log_path
        self.env = {
            **os.environ,
            "CLAWBEAT_MQTT_URL": broker.url(),
            "CLAWBEAT_DATABASE_URL": database_url,
            "CLAWBEAT_LOG_LEVEL": "DEBUG",
            "CLAWBEAT_MQTT_KEEPALIVE": "5",
            # No HTTP server unless a test asks (http_bind=...): tests must not fight
            # over the default port 8080.
            "CLAWBEAT_HTTP_BIND": "",
        }
        for key, value in settings.items():
            self.env[f"CLAWBEAT_{key.upper()}"] = str(value)
        # The replica name in cluster mode, unless the test names one.
        self.replica = str(settings.get("replica", f"replica-{next(_REPLICAS)}"))
        self.env["CLAWBEAT_REPLICA"] = self.replica
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def upgrade_schema(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "monitor.cli", "db", "upgrade"],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 60.0, *, probe: MqttProbe | None = None) -> None:
        """Start the monitor and wait for its retained presence ``online``.

        ``probe``: an ops client already subscribed to ``monitor/presence`` (a
        :class:`StatusWatch`). Pass it when a test holds one: the broker binds the client
        id to the username, so a second ``ops`` connection would take the first one over.
        """
        self._log = self.log_path.open("ab")
        own_probe = probe is None
        if probe is None:
            probe = MqttProbe(self.broker.url(self.broker.ops_user), client_id=self.broker.ops_user)
            probe.connect()
            probe.subscribe(f"{self.broker_root}/monitor/presence")
            probe.subscribe(f"{self.broker_root}/monitor/replicas/+/presence")
        # A cluster replica's own presence; alone, the monitor's.
        topics = {
            f"{self.broker_root}/monitor/replicas/{self.replica}/presence"
            if self.env.get("CLAWBEAT_CLUSTER", "").lower() in ("1", "true")
            else f"{self.broker_root}/monitor/presence"
        }
        started = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "monitor"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            probe.wait_for(
                lambda m: (
                    m.topic in topics
                    and m.at >= started
                    and json.loads(m.payload)["state"] == "online"
                ),
                timeout=timeout,
            )
        except TimeoutError as exc:
            raise AssertionError(f"monitor did not come online:\n{self.log_tail()}") from exc
        finally:
            if own_probe:
                probe.close()

    broker_root = "clawbeat/v1"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(10)
        self._close_log()

    def terminate(self, timeout: float = 20.0) -> int:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        code = self._proc.wait(timeout)
        self._close_log()
        return code

    def stop(self) -> None:
        if self.running():
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------ e2e helpers

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``python -m monitor.cli ARGS`` with this monitor's environment (database)."""
        result = subprocess.run(
            [sys.executable, "-m", "monitor.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"clawbeat {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def logged_transitions(self) -> list[tuple[str, str | None, str, str]]:
        """Every ``device X: old -> new (reason)`` line the monitor logged, in order."""
        found: list[tuple[str, str | None, str, str]] = []
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return found
        for match in _TRANSITION_LINE.finditer(text):
            device, old, new, reason = match.groups()
            found.append((device, None if old == "new" else old, new, reason))
        return found


_TRANSITION_LINE = re.compile(r"clawbeat\.monitor: device (\S+): (\S+) -> (\S+) \(([^)]+)\)")


@dataclass(frozen=True)
class StoredTransition:
    device_id: str
    old_state: str | None
    new_state: str
    reason: str | None
    session: str | None
    at: datetime


@dataclass(frozen=True)
class StoredDevice:
    id: str
    state: str
    reason: str | None
    session: str | None
    last_seq: int | None
    last_seen: datetime | None
    announced_interval: float | None
    interval_override: float | None
    in_maintenance: bool
    first_seen: datetime | None = None


def _query(database_url: str, what: Callable[[AsyncSession], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        engine = create_engine_for(database_url)
        try:
            async with make_session_factory(engine)() as session:
                return await what(session)
        finally:
            await engine.dispose()

    return run_coroutine(run)


def read_transitions(database_url: str, device_id: str | None = None) -> list[StoredTransition]:
    """The ``transitions`` table (one device's, or all), in the order they happened."""

    async def read(session: AsyncSession) -> list[StoredTransition]:
        rows = await repository.list_transitions(session, device_id=device_id)
        return [
            StoredTransition(r.device_id, r.old_state, r.new_state, r.reason, r.session, r.at)
            for r in rows
        ]

    return _query(database_url, read)


def read_devices(database_url: str) -> dict[str, StoredDevice]:
    """The ``devices`` table by id."""

    async def read(session: AsyncSession) -> dict[str, StoredDevice]:
        rows = await repository.list_devices(session)
        return {
            d.id: StoredDevice(
                d.id,
                d.state,
                d.reason,
                d.session,
                d.last_seq,
                d.last_seen,
                d.announced_interval,
                d.interval_override,
                d.in_maintenance,
                d.first_seen,
            )
            for d in rows
        }

    return _query(database_url, read)


def read_heartbeats_counted(database_url: str) -> int:
    """Heartbeats the monitor accepted, by its per-minute rollups (every device)."""

    async def read(session: AsyncSession) -> int:
        sums = await reports.rollup_sums(
            session, since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(2100, 1, 1, tzinfo=UTC)
        )
        return sum(s.count for s in sums)

    return _query(database_url, read)


def read_missed_counted(database_url: str) -> int:
    """Heartbeats the monitor counted as missed, by its per-minute rollups (every device)."""

    async def read(session: AsyncSession) -> int:
        sums = await reports.rollup_sums(
            session, since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(2100, 1, 1, tzinfo=UTC)
        )
        return sum(s.missed for s in sums)

    return _query(database_url, read)


def wait_until(
    condition: Callable[[], _T | None], timeout: float, *, every: float = 0.1, what: str = ""
) -> _T:
    """Poll ``condition`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(every)


class StatusWatch(MqttProbe):
    """An ops client following the retained status topics (and the monitor's presence)."""

    def __init__(self, broker: BrokerLogins, root: str = "clawbeat/v1") -> None:
        super().__init__(broker.url(broker.ops_user), client_id=broker.ops_user, keepalive=5)
        self.root = root
        self.topics = (
            f"{root}/status/#",
            f"{root}/monitor/presence",
            f"{root}/monitor/replicas/+/presence",
        )
        self.connect()
        for topic in self.topics:
            self.subscribe(topic)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._connected.is_set():
            # paho reconnected by itself (the broker restarted): a clean session has lost
            # the subscriptions, and the broker replays the retained topics on subscribe.
            for topic in self.topics:
                self.client.subscribe(topic, 1)
        super()._on_connect(client, userdata, flags, reason, props)

    def statuses(self, device_id: str) -> list[dict[str, Any]]:
        topic = f"{self.root}/status/{device_id}"
        return [json.loads(m.payload) for m in self.matching(lambda m: m.topic == topic)]

    def latest(self, device_id: str) -> dict[str, Any] | None:
        found = self.statuses(device_id)
        return found[-1] if found else None

    def latest_all(self) -> dict[str, dict[str, Any]]:
        prefix = f"{self.root}/status/"
        out: dict[str, dict[str, Any]] = {}
        for m in self.matching(lambda m: m.topic.startswith(prefix)):
            out[m.topic[len(prefix) :]] = json.loads(m.payload)
        return out

    def wait_state(
        self,
        device_id: str,
        state: str,
        *,
        reason: str | None = None,
        after: float = 0.0,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Wait for a status of ``device_id`` in ``state`` received at or after ``after``."""
        topic = f"{self.root}/status/{device_id}"

        def match(m: Received) -> bool:
            if m.topic != topic or m.at < after:
                return False
            body = json.loads(m.payload)
            return bool(body["state"] == state and (reason is None or body["reason"] == reason))

        try:
            found = self.wait_for(match, timeout)
        except TimeoutError as exc:
            raise AssertionError(
                f"{device_id} never became {state}/{reason}; statuses: {self.statuses(device_id)}"
            ) from exc
        body: dict[str, Any] = json.loads(found[-1].payload)
        return body


class Spawned:
    """Device-side processes a test starts; whatever is still running is killed at the end."""

    def __init__(self, broker: TestBroker, log_dir: Path) -> None:
        self.broker = broker
        self.log_dir = log_dir
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def _spawn(self, name: str, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        kwargs.setdefault("stdout", log)
        proc = subprocess.Popen(args, stderr=log, **kwargs)
        self._procs.append(proc)
        return proc

    def device(
        self, device_id: str, *, interval: float = 0.5, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """``clawbeat device`` (the SDK) for a provisioned device."""
        return self._spawn(
            device_id,
            [
                sys.executable,
                "-m",
                "device_client.cli",
                "device",
                "--id",
                device_id,
                "--broker",
                self.broker.url(device_id),
                "--interval",
                str(interval),
                "--keepalive",
                "5",
                "--backoff-cap",
                "1",
                "--log-level",
                "DEBUG",
                *extra,
            ],
        )

    def simulate(
        self,
        *,
        prefix: str,
        count: int,
        password: str,
        interval: float = 0.5,
        extra: tuple[str, ...] = (),
    ) -> subprocess.Popen[bytes]:
        """``clawbeat simulate``: ``count`` devices ``{prefix}{i:05d}`` in one process."""
        return self._spawn(
            f"simulate-{prefix}",
            [
                sys.executable,
                "-m",
                "device_client.cli",
                "simulate",
                "--devices",
                str(count),
                "--prefix",
                prefix,
                "--broker",
                f"mqtt://{self.broker.host}:{self.broker.port}",
                "--password",
                password,
                "--interval",
                str(interval),
                "--keepalive",
                "5",
                "--backoff-cap",
                "1",
                "--report-every",
                "1",
                *extra,
            ],
        )

    def shell_device(
        self, device_id: str, session: str, *, will: bool = True
    ) -> subprocess.Popen[bytes]:
        """``mosquitto_pub -l``: one connection, one publish per line written to stdin."""
        topic = f"clawbeat/v1/devices/{device_id}"
        args = [
            "mosquitto_pub",
            "-h",
            self.broker.host,
            "-p",
            str(self.broker.port),
            "-i",
            device_id,
            "-u",
            device_id,
            "-P",
            self.broker.device_passwords[device_id],
            "-q",
            "1",
            "-r",
            "-l",
            "-t",
            f"{topic}/heartbeat",
        ]
        if will:
            args += [
                "--will-topic",
                f"{topic}/presence",
                "--will-qos",
                "1",
                "--will-retain",
                "--will-payload",
                json.dumps({"state": "offline", "session": session, "reason": "connection-lost"}),
            ]
        return self._spawn(f"{device_id}-{session}", args, stdin=subprocess.PIPE)

    def publish(self, device_id: str, kind: str, payload: str | bytes) -> None:
        """One ``mosquitto_pub`` (QoS 1, retained) on a device's own topic."""
        data = payload.encode() if isinstance(payload, str) else payload
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                self.broker.host,
                "-p",
                str(self.broker.port),
                "-i",
                device_id,
                "-u",
                device_id,
                "-P",
                self.broker.device_passwords[device_id],
                "-q",
                "1",
                "-r",
                "-t",
                f"clawbeat/v1/devices/{device_id}/{kind}",
                "-s",
            ],
            input=data,
            check=True,
            timeout=10,
            capture_output=True,
        )

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stdin is not None:
                proc.stdin.close()
        for log in self._logs:
            log.close()

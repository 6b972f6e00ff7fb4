"""``clawbeat demo`` (what ``make run`` runs), started for real: broker, monitor, fleet."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.runner import free_port
from tests.harness.monitor import wait_until
from tests.harness.mosquitto import check_mosquitto_installed

# A demo start runs a broker, `db upgrade` and a monitor, each a Python process: allow a
# loaded 2-core machine plenty. The demo gives each child 15 s to stop.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
BANNER_END = "Ctrl-C stops everything."


@dataclass
class DemoDir:
    cwd: Path
    env: dict[str, str]

    def args(self, *, port: int, tls_port: int, http_port: int) -> list[str]:
        return [
            sys.executable, "-m", "monitor.cli", "demo", "--devices", "3", "--interval", "1",
            "--port", str(port), "--tls-port", str(tls_port),
            "--http-bind", f"127.0.0.1:{http_port}",
        ]  # fmt: skip

    def tokens(self) -> list[dict[str, object]]:
        out = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "token", "list", "--all", "--json"],
            cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        return [json.loads(line) for line in out.splitlines()]


class RunningDemo:
    def __init__(self, demo: DemoDir, args: list[str], name: str) -> None:
        self.out = demo.cwd / f"{name}.out"
        self.err = demo.cwd / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(args, cwd=demo.cwd, env=demo.env, stdout=out, stderr=err)

    def wait_banner(self) -> str:
        """The admin token the banner shows."""

        def banner() -> str | None:
            assert self.proc.poll() is None, self.err.read_text()
            text = self.out.read_text()
            return text if BANNER_END in text else None

        text = wait_until(banner, START_TIMEOUT, every=0.2, what="the demo's banner")
        found = re.search(r"\(token: (cbt_\S+)\)", text)
        assert found, text
        return found.group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture
def demo_dir(tmp_path: Path) -> DemoDir:
    missing = check_mosquitto_installed()
    if missing:
        pytest.fail(missing, pytrace=False)
    env = {**os.environ, "CLAWBEAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"}
    return DemoDir(tmp_path, env)


def _ports(n: int) -> list[int]:
    ports: list[int] = []
    for _ in range(n):
        ports.append(free_port(exclude=ports))
    return ports


def _live_demo_tokens(demo: DemoDir) -> list[dict[str, object]]:
    return [t for t in demo.tokens() if t["name"] == "demo" and t["revoked"] is None]


def test_a_second_demo_stops_at_once_and_the_admin_token_is_reused(demo_dir: DemoDir) -> None:
    port, tls_port, http_port, *others = _ports(6)
    args = demo_dir.args(port=port, tls_port=tls_port, http_port=http_port)
    first = RunningDemo(demo_dir, args, "first")
    try:
        token = first.wait_banner()
        passwd = demo_dir.cwd / "run" / "broker" / "passwd"
        before = (passwd.read_bytes(), passwd.stat().st_mtime_ns, demo_dir.tokens())

        # The same command again: one line naming the port, and nothing written.
        second = subprocess.run(
            args, cwd=demo_dir.cwd, env=demo_dir.env, capture_output=True, text=True,
            timeout=START_TIMEOUT, check=False,
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        assert second.stdout == ""
        assert second.stderr.count("\n") == 1, second.stderr
        assert f"port {port} on 127.0.0.1 is in use" in second.stderr
        # Other ports, same run directory: refused as well.
        third = subprocess.run(
            demo_dir.args(port=others[0], tls_port=others[1], http_port=others[2]),
            cwd=demo_dir.cwd, env=demo_dir.env, capture_output=True, text=True,
            timeout=START_TIMEOUT, check=False,
        )  # fmt: skip
        assert third.returncode == 2, third.stdout + third.stderr
        assert third.stdout == ""
        assert third.stderr.count("\n") == 1, third.stderr
        assert "another `clawbeat demo` is running in" in third.stderr
        assert (passwd.read_bytes(), passwd.stat().st_mtime_ns, demo_dir.tokens()) == before
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0, first.err.read_text()

    # A new run shows the same token: no admin token is left behind unrevoked.
    again = RunningDemo(demo_dir, args, "again")
    try:
        assert again.wait_banner() == token
        assert len(_live_demo_tokens(demo_dir)) == 1
    finally:
        assert again.stop() == 0, again.err.read_text()

    # The saved token lost (run/ removed, the database kept): the old one is revoked.
    (demo_dir.cwd / "run" / "demo-token").unlink()
    fresh = RunningDemo(demo_dir, args, "fresh")
    try:
        new_token = fresh.wait_banner()
        assert new_token != token
        live = _live_demo_tokens(demo_dir)
        assert len(live) == 1
        assert new_token.startswith(str(live[0]["prefix"]))
    finally:
        assert fresh.stop() == 0, fresh.err.read_text()


def _descendants(pid: int) -> list[int]:
    children_file = Path(f"/proc/{pid}/task/{pid}/children")
    if not children_file.exists():
        return []
    children = [int(p) for p in children_file.read_text().split()]
    return children + [d for c in children for d in _descendants(c)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:  # exited meanwhile
        return ""


def test_no_broker_password_in_any_demo_command_line(demo_dir: DemoDir) -> None:
    port, tls_port, http_port = _ports(3)
    demo = RunningDemo(
        demo_dir, demo_dir.args(port=port, tls_port=tls_port, http_port=http_port), "ps"
    )
    try:
        demo.wait_banner()
        broker_dir = demo_dir.cwd / "run" / "broker"
        secrets = [
            *json.loads((broker_dir / "credentials.json").read_text()).values(),
            (broker_dir / "sim-password").read_text().strip(),
        ]
        commands = [_cmdline(pid) for pid in _descendants(demo.proc.pid)]
        assert any(" simulate " in c for c in commands), commands
        assert any("mosquitto" in c for c in commands), commands
        for command in commands:
            for secret in secrets:
                assert secret not in command, command
        # ... and the fleet still logs in (its fleet line comes every 10 s).
        wait_until(
            lambda: "fleet: connected=3/3" in demo.err.read_text(), 60, what="the fleet connected"
        )
    finally:
        assert demo.stop() == 0, demo.err.read_text()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_leaves_no_broker_behind(
    demo_dir: DemoDir, signum: signal.Signals
) -> None:
    port, tls_port, http_port = _ports(3)
    args = demo_dir.args(port=port, tls_port=tls_port, http_port=http_port)
    demo = RunningDemo(demo_dir, args, "early")
    pid_file = demo_dir.cwd / "run" / "broker" / "mosquitto.pid"
    mosquitto = 0
    try:
        # Mosquitto writes its pid once it runs; the migration and the monitor come next.
        text = wait_until(
            lambda: pid_file.read_text().strip() if pid_file.exists() else None,
            START_TIMEOUT,
            every=0.01,
            what="the demo's broker",
        )
        mosquitto = int(text)
        demo.proc.send_signal(signum)
        assert demo.proc.wait(STOP_TIMEOUT) == 0, demo.err.read_text()
        # Mosquitto runs in a session of its own: only the demo can stop it.
        wait_until(lambda: not _alive(mosquitto), 15, what="the broker stopped")
        assert not any(_alive(pid) for pid in _descendants(demo.proc.pid))
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
        if mosquitto and _alive(mosquitto):
            os.kill(mosquitto, signal.SIGKILL)

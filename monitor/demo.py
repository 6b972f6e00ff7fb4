"""``clawbeat demo``: a local broker, the monitor on embedded SQLite and a simulated fleet.

The quickstart's main command. Each part runs as its own process, started exactly as an
operator would start it (``clawbeat monitor``, ``clawbeat simulate``), so the demo shows
the real thing; this module only provisions credentials and supervises.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from broker.acl import MONITOR_USER, OPS_USER
from broker.cli import service_credentials
from broker.errors import BrokerToolError
from broker.runner import BrokerProcess, port_in_use
from monitor.demo_token import demo_admin_token
from monitor.errors import ConfigError
from monitor.settings import MonitorSettings
from monitor.web.bind import parse_bind

SIM_PASSWORD_FILE = "sim-password"  # noqa: S105 - a file name, not a password
TOKEN_FILE = "demo-token"  # noqa: S105 - a file name, not a token
LOCK_FILE = "demo.lock"


def add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run broker + monitor (SQLite) + a simulated fleet locally until Ctrl-C",
        description="Starts Mosquitto from ./mosquitto.conf in RUN_DIR/broker, the monitor "
        "on the SQLite database CLAWBEAT_DATABASE_URL (default ./clawbeat.db) and a "
        "simulated fleet with a few faulty devices. Watch it with `clawbeat watch`.",
    )
    p.add_argument("--run-dir", type=Path, default=Path("run"), help="(%(default)s)")
    p.add_argument("--port", type=int, default=18830, help="MQTT port (%(default)s)")
    p.add_argument("--tls-port", type=int, default=18883, help="MQTT/TLS port (%(default)s)")
    p.add_argument("--devices", type=int, default=200, help="simulated devices (%(default)s)")
    p.add_argument("--interval", type=float, default=5.0, help="heartbeat s (%(default)s)")
    p.add_argument("--http-bind", default="127.0.0.1:8080", help="dashboard and API (%(default)s)")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir.resolve()
    # Before anything is written: a second demo (or anything else on these ports) must not
    # provision users, tokens or a database for the one that is running.
    _check_ports(args)
    with _run_dir_lock(run_dir):
        return _run_demo(args, run_dir)


def _check_ports(args: argparse.Namespace) -> None:
    ports = [("MQTT", "127.0.0.1", args.port), ("MQTT/TLS", "127.0.0.1", args.tls_port)]
    if args.http_bind:
        try:
            ports.append(("HTTP", *parse_bind(args.http_bind)))
        except ConfigError as exc:
            raise BrokerToolError(str(exc)) from exc
    for what, host, port in ports:
        if port_in_use(host, port):
            raise BrokerToolError(
                f"{what} port {port} on {host} is in use (is another `clawbeat demo` "
                "running?); stop it, or choose other ports with --port, --tls-port, --http-bind"
            )


@contextlib.contextmanager
def _run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory: one demo per directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BrokerToolError(
                f"another `clawbeat demo` is running in {run_dir}; stop it, or use --run-dir"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _run_demo(args: argparse.Namespace, run_dir: Path) -> int:
    # The broker, the monitor and the fleet run in sessions of their own (Ctrl-C in the
    # terminal reaches only this supervisor), so nothing but this process stops them. A
    # signal during start-up therefore interrupts it like Ctrl-C (KeyboardInterrupt), and
    # the finally below stops whatever had been started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    broker = BrokerProcess(run_dir=run_dir / "broker", port=args.port, tls_port=args.tls_port)
    children: list[subprocess.Popen[bytes]] = []
    try:
        return _start_and_supervise(args, run_dir, broker, children)
    except KeyboardInterrupt:
        return 0
    finally:
        # Stopping must not be cut short by a second signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # The fleet first (the monitor records their clean shutdowns), then the monitor
        # (flushes and publishes itself offline), then the broker they both need.
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        broker.stop()


def _start_and_supervise(
    args: argparse.Namespace,
    run_dir: Path,
    broker: BrokerProcess,
    children: list[subprocess.Popen[bytes]],
) -> int:
    creds = service_credentials(broker.run_dir)
    sim_password = _sim_password(broker.run_dir)
    users = dict(creds)
    users.update({f"sim-{i:05d}": sim_password for i in range(args.devices)})
    broker.prepare(users)
    broker.start()
    env = {
        **os.environ,
        "CLAWBEAT_MQTT_URL": broker.url(MONITOR_USER, creds[MONITOR_USER]),
        "CLAWBEAT_HTTP_BIND": args.http_bind,
    }
    exe = [sys.executable, "-m", "monitor.cli"]
    upgrade = subprocess.run([*exe, "db", "upgrade"], env=env, check=False)
    if upgrade.returncode != 0:
        return upgrade.returncode
    # The dashboard's admin token (tokens live in the demo's database), kept across runs.
    token = demo_admin_token(MonitorSettings().database_url, run_dir / TOKEN_FILE)
    names = ["monitor", "simulate"]
    children.append(subprocess.Popen([*exe, "monitor"], env=env, start_new_session=True))
    children.append(
        subprocess.Popen(
            [
                *exe, "simulate",
                "--devices", str(args.devices),
                # The password by file, not in the URL: argv is readable by every user
                # of the machine (ps).
                "--broker", f"mqtt://{broker.host}:{broker.port}",
                "--password-file", str(broker.run_dir / SIM_PASSWORD_FILE),
                "--prefix", "sim-",
                "--interval", str(args.interval),
                "--die-fraction", "0.02",
                "--mute-fraction", "0.02",
                "--flap-fraction", "0.01",
                # A few degrade first (the At risk panel): two days of decline in 48 min.
                "--degrade-fraction", "0.04",
                "--degrade-speed", "60",
            ],
            env=env,
            start_new_session=True,
        )
    )  # fmt: skip
    ops_url = broker.url(OPS_USER, creds[OPS_USER])
    print(
        f"\nclawbeat demo running: broker {broker.host}:{broker.port}, {args.devices} devices."
        f"\n  watch the fleet:   clawbeat watch"
        f"\n  dashboard:         http://{args.http_bind}/  (token: {token})"
        f"\n  status topics:     mosquitto_sub -L '{ops_url}/clawbeat/v1/status/+' -v"
        f"\n  Ctrl-C stops everything.\n",
        flush=True,
    )
    stopping = False

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # From here a signal just ends the loop (not an exception inside a child's poll).
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stopping:
        for name, child in zip(names, children, strict=True):
            if child.poll() is not None:
                print(f"demo: {name} exited with {child.returncode}", file=sys.stderr)
                return 1
        time.sleep(0.5)
    return 0


def _sim_password(run_dir: Path) -> str:
    import secrets  # noqa: PLC0415 - only the demo needs it

    path = run_dir / SIM_PASSWORD_FILE
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(12))
    return path.read_text().strip()

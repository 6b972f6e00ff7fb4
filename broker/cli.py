"""``clawbeat broker``: users, ACL, development TLS certificates, and a local broker."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from types import FrameType

from broker.acl import HOMEASSISTANT_USER, MONITOR_USER, OPS_USER, render_acl
from broker.certs import generate_dev_certs
from broker.errors import BrokerToolError
from broker.nats_auth import parse_password_lines, render_nats_authorization
from broker.passwords import add_users, list_users, remove_user
from broker.runner import BrokerProcess
from device_client.protocol import DEFAULT_TOPIC_ROOT, InvalidDeviceId, validate_device_id

DEFAULT_PASSWD = Path("broker/passwd")


def add_broker_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="manage Mosquitto users, ACL and dev TLS certificates; run a local broker",
        description="Mosquitto tooling: users are hashed by mosquitto_passwd; the ACL gives "
        "each device its own topics only.",
    )
    sub = parser.add_subparsers(dest="broker_command", required=True, metavar="COMMAND")

    p = sub.add_parser("add-user", help="add or replace a user in a password file")
    p.add_argument("name", help="username (a device id for devices, or monitor/ops)")
    _password_options(p)
    p.add_argument("--file", type=Path, default=DEFAULT_PASSWD, help="password file (%(default)s)")
    p.set_defaults(func=_cmd_add_user)

    p = sub.add_parser("add-devices", help="provision many device users sharing one password")
    p.add_argument("--prefix", default="sim-", help="device id prefix (%(default)s)")
    p.add_argument("--count", type=int, required=True, help="number of devices")
    p.add_argument("--start", type=int, default=0, help="first index (%(default)s)")
    _password_options(p)
    p.add_argument("--file", type=Path, default=DEFAULT_PASSWD, help="password file (%(default)s)")
    p.set_defaults(func=_cmd_add_devices)

    p = sub.add_parser("remove-user", help="remove a user from a password file")
    p.add_argument("name")
    p.add_argument("--file", type=Path, default=DEFAULT_PASSWD, help="password file (%(default)s)")
    p.set_defaults(func=_cmd_remove_user)

    p = sub.add_parser("list-users", help="list the users of a password file")
    p.add_argument("--file", type=Path, default=DEFAULT_PASSWD, help="password file (%(default)s)")
    p.set_defaults(func=_cmd_list_users)

    p = sub.add_parser("acl", help="print (or write) the ACL for a topic root")
    p.add_argument("--root", default=DEFAULT_TOPIC_ROOT, help="topic root (%(default)s)")
    p.add_argument("--output", type=Path, help="write here instead of stdout")
    p.add_argument(
        "--monitor-user",
        action="append",
        metavar="NAME",
        help=f"the monitor's broker user ({MONITOR_USER}); repeat it for the replicas of a "
        "cluster, each of which logs in as its own user",
    )
    p.add_argument(
        "--homeassistant-prefix",
        metavar="PREFIX",
        help="also allow Home Assistant MQTT discovery under this prefix (e.g. homeassistant)",
    )
    p.add_argument(
        "--homeassistant-user",
        default=HOMEASSISTANT_USER,
        help="Home Assistant's broker user (%(default)s)",
    )
    p.set_defaults(func=_cmd_acl)

    p = sub.add_parser(
        "nats-auth",
        help="print (or write) NATS users and permissions equivalent to the ACL",
        description="Write nats-server's authorization block (include it from the server "
        "config): each device publishes only its own heartbeat and presence and reads only "
        "its own config, over MQTT only; the monitor and ops users as in the ACL. USERS is a "
        "file of name:password lines (plain, or bcrypt hashes from `nats server passwd`).",
    )
    p.add_argument("--users", type=Path, required=True, help="name:password lines")
    p.add_argument("--root", default=DEFAULT_TOPIC_ROOT, help="topic root (%(default)s)")
    p.add_argument(
        "--partitions",
        type=int,
        metavar="P",
        help="the P of the broker's partition subject mapping (docs/cluster.md); omit when "
        "the broker does not remap device topics",
    )
    p.add_argument("--monitor-user", default=MONITOR_USER, help="(%(default)s)")
    p.add_argument("--ops-user", default=OPS_USER, help="(%(default)s)")
    p.add_argument("--output", type=Path, help="write here (mode 600) instead of stdout")
    p.set_defaults(func=_cmd_nats_auth)

    p = sub.add_parser("dev-certs", help="generate a development CA, server and client cert")
    p.add_argument("--dir", type=Path, default=Path("broker/dev"), help="output (%(default)s)")
    p.add_argument(
        "--hostname", action="append", default=None, help="server name (repeatable; localhost)"
    )
    p.set_defaults(func=_cmd_dev_certs)

    p = sub.add_parser(
        "run",
        help="run Mosquitto in the foreground from ./mosquitto.conf (local use)",
        description="Render mosquitto.conf into a run directory (ports and paths), create "
        "the monitor and ops users (credentials saved to RUN_DIR/credentials.json, mode "
        "600) and dev TLS certificates if missing, then run Mosquitto until interrupted.",
    )
    p.add_argument("--run-dir", type=Path, default=Path("run/broker"), help="(%(default)s)")
    p.add_argument("--port", type=int, default=1883, help="MQTT port (%(default)s)")
    p.add_argument("--tls-port", type=int, default=8883, help="MQTT/TLS port (%(default)s)")
    p.add_argument("--config", type=Path, help="template (default ./mosquitto.conf)")
    p.add_argument("--root", default=DEFAULT_TOPIC_ROOT, help="topic root (%(default)s)")
    p.set_defaults(func=_cmd_run)


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password", help="the password (visible in ps; prefer the others)")
    group.add_argument("--password-file", type=Path, help="read the password from this file")


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if args.password_file:
        return Path(args.password_file).read_text().strip()
    if not sys.stdin.isatty():
        raise BrokerToolError("no password given: use --password-file or --password")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise BrokerToolError("passwords differ")
    return first


def _user_name(name: str) -> str:
    """A username by the device id rule, which service users (monitor, ops) also meet.

    Every user is matched by the ACL's ``%u`` patterns and its name becomes a topic level:
    a name with ``/``, ``+``, ``#``, spaces or other characters would give a device other
    topics than its own, or none the monitor reads.
    """
    try:
        return validate_device_id(name)
    except InvalidDeviceId as exc:
        raise BrokerToolError(str(InvalidDeviceId(name, what="username"))) from exc


def _cmd_add_user(args: argparse.Namespace) -> int:
    add_users(args.file, {_user_name(args.name): _password(args)})
    print(f"user {args.name!r} written to {args.file} (reload the broker: SIGHUP)")
    return 0


def _cmd_add_devices(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise BrokerToolError("--count must be at least 1")
    ids = [f"{args.prefix}{i:05d}" for i in range(args.start, args.start + args.count)]
    try:
        for device_id in ids:
            validate_device_id(device_id)
    except InvalidDeviceId as exc:
        raise BrokerToolError(str(exc)) from exc
    add_users(args.file, dict.fromkeys(ids, _password(args)))
    print(f"{len(ids)} device users {ids[0]}..{ids[-1]} written to {args.file}")
    return 0


def _cmd_remove_user(args: argparse.Namespace) -> int:
    if not remove_user(args.file, args.name):
        print(f"no user {args.name!r} in {args.file}", file=sys.stderr)
        return 1
    print(f"user {args.name!r} removed from {args.file}")
    return 0


def _cmd_list_users(args: argparse.Namespace) -> int:
    for name in list_users(args.file):
        print(name)
    return 0


def _cmd_acl(args: argparse.Namespace) -> int:
    try:
        text = render_acl(
            args.root,
            monitor_user=args.monitor_user or MONITOR_USER,
            homeassistant_prefix=args.homeassistant_prefix,
            homeassistant_user=args.homeassistant_user,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_nats_auth(args: argparse.Namespace) -> int:
    try:
        users = parse_password_lines(args.users.read_text(), source=str(args.users))
        text = render_nats_authorization(
            users,
            topic_root=args.root,
            partitions=args.partitions,
            monitor_user=args.monitor_user,
            ops_user=args.ops_user,
        )
    except OSError as exc:
        print(f"error: cannot read {args.users}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        # Passwords inside: created private, never world-readable even for a moment.
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_dev_certs(args: argparse.Namespace) -> int:
    certs = generate_dev_certs(args.dir, hostnames=tuple(args.hostname or ["localhost"]))
    print(f"CA {certs.ca_cert}\nserver {certs.server_cert} {certs.server_key}")
    print(f"client {certs.client_cert} {certs.client_key}")
    return 0


def service_credentials(run_dir: Path) -> dict[str, str]:
    """The monitor and ops passwords of a run directory, created on first use."""
    path = run_dir / "credentials.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    run_dir.mkdir(parents=True, exist_ok=True)
    creds = {MONITOR_USER: secrets.token_urlsafe(16), OPS_USER: secrets.token_urlsafe(16)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
    return creds


def _cmd_run(args: argparse.Namespace) -> int:
    proc = BrokerProcess(
        run_dir=args.run_dir,
        port=args.port,
        tls_port=args.tls_port,
        template=args.config,
        topic_root=args.root,
    )
    proc.prepare(service_credentials(proc.run_dir))
    signals = 0

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        # Only signal the broker here: the main thread may be inside proc.wait(), which
        # returns once Mosquitto has exited (saving its persistence); waiting here as
        # well would deadlock on the Popen's wait lock. A second Ctrl-C kills it.
        nonlocal signals
        signals += 1
        proc.terminate(force=signals > 1)

    # Installed before Mosquitto starts: Mosquitto runs in its own session (the terminal's
    # Ctrl-C never reaches it), so a signal that killed this process would orphan it.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        proc.start()
    except BrokerToolError:
        if signals:  # stopped while starting
            proc.stop()
            return 0
        raise
    if signals:  # the signal came before there was a process to pass it to
        proc.stop()
        return 0
    print(
        f"mosquitto on {proc.host}:{proc.port} (TLS {proc.tls_port}); "
        f"credentials in {proc.run_dir / 'credentials.json'}; log {proc.log_path}",
        flush=True,
    )
    rc = proc.wait()
    proc.stop()
    if rc in (0, -signal.SIGTERM):
        return 0
    return rc if rc > 0 else 128 - rc  # killed by a signal: the shell's convention

"""``clawbeat device`` (one device) and ``clawbeat simulate`` (a fleet in one process).

Exit codes: 0 after a clean stop (SIGTERM/SIGINT, or ``--duration`` elapsed); 2 for a
configuration error, including a broker that refuses the device's first login.

Runs on its own too: ``python -m device_client.cli device --id pump-7 --broker URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from device_client import protocol
from device_client.client import DEFAULT_INTERVAL, DEFAULT_KEEPALIVE, Device
from device_client.endpoint import resolve_endpoint
from device_client.errors import ConnectRefused, DeviceError
from device_client.log_format import UtcTextFormatter
from device_client.settings import DeviceSettings, read_secret
from device_client.simulate import FleetOptions, run_fleet
from device_client.urls import BrokerUrl, parse_broker_urls

EXIT_CONFIG = 2
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_device_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``device``: run one device until SIGTERM/SIGINT."""
    parser = subparsers.add_parser(
        "device",
        help="run one device: presence, heartbeats, config, until SIGTERM/SIGINT",
        description="Run one clawbeat device (protocol v1) until SIGTERM or SIGINT, then "
        "announce shutdown and disconnect cleanly. It reconnects by itself with backoff; a "
        "refused first login exits with status 2.",
    )
    parser.add_argument(
        "--id",
        dest="device_id",
        required=True,
        help="device id (1-64 of A-Z a-z 0-9 . _ -); also the MQTT client id and, unless "
        "--username is given, the username",
    )
    _connection_options(parser)
    parser.add_argument(
        "--username", help="broker username (default: the --broker URL's, else the device id)"
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=DEFAULT_INTERVAL,
        help="seconds between heartbeats until the monitor configures another (%(default)s)",
    )
    parser.add_argument("--fw", help="firmware version to report (at most 64 characters)")
    _timing_options(parser)
    parser.add_argument(
        "--stop-timeout",
        type=_seconds,
        default=5.0,
        help="on SIGTERM, seconds to wait for the broker to acknowledge the shutdown "
        "presence (%(default)s)",
    )
    _log_options(parser)
    parser.set_defaults(func=run_device_command)
    return parser


def add_simulate_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``simulate``: run a fleet of devices in this one process."""
    parser = subparsers.add_parser(
        "simulate",
        help="run a simulated fleet (thousands of devices, one process) with faults",
        description="Run N simulated devices in one process and one event loop. Device ids "
        "are {prefix}{index:05d} for index = start .. start+N-1; each logs in with its id "
        "as username and the shared --password (provision them with `clawbeat broker "
        "add-devices`). A fleet line is logged every --report-every seconds. SIGTERM or "
        "SIGINT (or --duration) stops every device cleanly.",
    )
    parser.add_argument(
        "--devices", type=_positive_int, required=True, help="number of devices to simulate"
    )
    _connection_options(parser)
    parser.add_argument("--prefix", default="sim-", help="device id prefix (%(default)s)")
    parser.add_argument(
        "--start", type=_non_negative_int, default=0, help="first device index (%(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=DEFAULT_INTERVAL,
        help="heartbeat interval until the monitor configures another (%(default)s)",
    )
    parser.add_argument("--fw", default="sim-1.0", help="firmware version to report (%(default)s)")
    _timing_options(parser)
    faults = parser.add_argument_group("faults (disjoint random subsets of the fleet)")
    faults.add_argument(
        "--die-fraction",
        type=_fraction,
        default=0.0,
        help="fraction that dies: socket closed without DISCONNECT, never back; the broker "
        "publishes their will (%(default)s)",
    )
    faults.add_argument(
        "--mute-fraction",
        type=_fraction,
        default=0.0,
        help="fraction that stops beating but stays connected (%(default)s)",
    )
    faults.add_argument(
        "--flap-fraction",
        type=_fraction,
        default=0.0,
        help="fraction that repeatedly drops its connection without DISCONNECT and "
        "reconnects (%(default)s)",
    )
    faults.add_argument(
        "--degrade-fraction",
        type=_fraction,
        default=0.0,
        help="fraction that degrades before failing: a draining battery, a flaky link, a "
        "memory leak, a slow-down (docs/prediction.md) (%(default)s)",
    )
    faults.add_argument(
        "--degrade-speed",
        type=_positive_float,
        default=1.0,
        help="run the degradation schedule this many times faster than the clock (%(default)s)",
    )
    faults.add_argument(
        "--fault-after",
        type=_non_negative_float,
        help="seconds after the connect ramp before faults begin, spread over one interval "
        "(default: 3 intervals)",
    )
    faults.add_argument(
        "--flap-period",
        type=_seconds,
        help="mean seconds between a flapping device's drops (default: 10 intervals)",
    )
    faults.add_argument(
        "--seed", type=int, help="random seed, for a reproducible choice of faulty devices"
    )
    run = parser.add_argument_group("running")
    run.add_argument(
        "--connect-rate",
        type=_positive_float,
        default=200.0,
        help="new connections per second during the initial ramp (%(default)s)",
    )
    run.add_argument(
        "--report-every",
        type=_positive_float,
        default=10.0,
        help="seconds between fleet lines: connected count, heartbeats/s (%(default)s)",
    )
    run.add_argument(
        "--duration",
        type=_positive_float,
        help="stop after this many seconds (default: run until SIGTERM/SIGINT)",
    )
    run.add_argument(
        "--stop-timeout",
        type=_seconds,
        default=10.0,
        help="on stop, seconds to wait for the shutdown presences to be acknowledged (%(default)s)",
    )
    _log_options(parser)
    parser.add_argument(
        "--device-log-level",
        choices=_LOG_LEVELS,
        default="ERROR",
        type=str.upper,
        help="level for per-device lines such as connects and losses (%(default)s)",
    )
    parser.set_defaults(func=run_simulate_command)
    return parser


def run_device_command(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    log = logging.getLogger("clawbeat.device")
    try:
        settings = DeviceSettings()
        urls, password = _broker_and_password(args, settings)
        tls_ca, tls_cert, tls_key = _tls_files(args, settings, urls[0])
        device = Device(
            device_id=args.device_id,
            broker=urls,
            username=args.username,
            password=password,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            interval=args.interval,
            jitter=args.jitter,
            keepalive=args.keepalive,
            fw=args.fw,
            logger=log,
            topic_root=args.topic_root or settings.topic_root,
            backoff_base=args.backoff_base,
            backoff_cap=args.backoff_cap,
            connect_timeout=args.connect_timeout,
        )
        device.run_forever(stop_timeout=args.stop_timeout)
    except ConnectRefused as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except (DeviceError, ValueError, OSError) as exc:  # ProtocolError is a ValueError
        print(f"clawbeat device: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def run_simulate_command(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    logging.getLogger("clawbeat.simulate.device").setLevel(args.device_log_level)
    try:
        settings = DeviceSettings()
        urls, password = _broker_and_password(args, settings)
        tls_ca, tls_cert, tls_key = _tls_files(args, settings, urls[0])
        endpoint = resolve_endpoint(
            [url.without_credentials() for url in urls],
            password=password,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        options = FleetOptions(
            devices=args.devices,
            endpoint=endpoint,
            prefix=args.prefix,
            start=args.start,
            interval=args.interval,
            jitter=args.jitter,
            keepalive=args.keepalive,
            fw=args.fw,
            topic_root=args.topic_root or settings.topic_root,
            die_fraction=args.die_fraction,
            mute_fraction=args.mute_fraction,
            flap_fraction=args.flap_fraction,
            degrade_fraction=args.degrade_fraction,
            degrade_speed=args.degrade_speed,
            fault_after=args.fault_after,
            flap_period=args.flap_period,
            connect_rate=args.connect_rate,
            report_every=args.report_every,
            duration=args.duration,
            seed=args.seed,
            backoff_base=args.backoff_base,
            backoff_cap=args.backoff_cap,
            connect_timeout=args.connect_timeout,
            stop_timeout=args.stop_timeout,
        )
    except (DeviceError, ValueError, OSError) as exc:
        print(f"clawbeat simulate: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    asyncio.run(run_fleet(options))
    return 0


# -- shared options -------------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("broker")
    group.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://[user[:password]@]host[:port], or mqtts:// for TLS; several, "
        "comma-separated, for the nodes of a broker cluster (connects to one, moves to the "
        "next when it is lost; a simulated fleet spreads over them) (default: the "
        "address in $CLAWBEAT_MQTT_URL, whose credentials are ignored, else "
        "mqtt://127.0.0.1:1883)",
    )
    secret = group.add_mutually_exclusive_group()
    secret.add_argument(
        "--password",
        help="broker password (visible in ps; prefer --password-file or "
        "$CLAWBEAT_MQTT_PASSWORD_FILE); overrides the URL's",
    )
    secret.add_argument(
        "--password-file", type=Path, help="read the broker password from this file"
    )
    group.add_argument(
        "--tls-ca",
        type=Path,
        help="CA file to verify the broker with (mqtts:// only; default: system CAs, or "
        "$CLAWBEAT_MQTT_CA_FILE)",
    )
    group.add_argument(
        "--tls-cert",
        type=Path,
        help="client certificate, for brokers that require one (or $CLAWBEAT_MQTT_CERT_FILE)",
    )
    group.add_argument(
        "--tls-key", type=Path, help="client certificate key (or $CLAWBEAT_MQTT_KEY_FILE)"
    )
    group.add_argument(
        "--topic-root",
        help=f"topic root (default: $CLAWBEAT_TOPIC_ROOT, else {protocol.DEFAULT_TOPIC_ROOT})",
    )


def _timing_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("timing")
    group.add_argument(
        "--jitter",
        type=_non_negative_float,
        default=0.0,
        help="random extra delay per heartbeat, seconds, at most half the interval (%(default)s)",
    )
    group.add_argument(
        "--keepalive",
        type=_keepalive,
        default=DEFAULT_KEEPALIVE,
        help="MQTT keepalive, seconds, at most 300: the broker publishes the will about "
        "1.5 x this after a connection goes silent (%(default)s)",
    )
    group.add_argument(
        "--backoff-base",
        type=_positive_float,
        default=0.5,
        help="first reconnect backoff step, seconds; doubles per failure (%(default)s)",
    )
    group.add_argument(
        "--backoff-cap",
        type=_positive_float,
        default=30.0,
        help="largest reconnect backoff step, seconds (%(default)s)",
    )
    group.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds allowed for connecting and for the broker's CONNACK (%(default)s)",
    )


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=_LOG_LEVELS,
        default="INFO",
        type=str.upper,
        help="log level (%(default)s)",
    )


def _broker_and_password(
    args: argparse.Namespace, settings: DeviceSettings
) -> tuple[tuple[BrokerUrl, ...], str | None]:
    """The broker URLs and password; explicit options, then the URL, then the environment."""
    if args.broker:
        urls = parse_broker_urls(args.broker)
    else:
        # The environment's URL may carry the monitor's login; a device must never use it.
        urls = tuple(u.without_credentials() for u in parse_broker_urls(settings.mqtt_url))
    url = urls[0]
    if args.password is not None:
        password: str | None = args.password
    elif args.password_file is not None:
        password = read_secret(args.password_file)
    elif url.password is not None:
        password = url.password
    else:
        password = settings.password()
    return urls, password


def _tls_files(
    args: argparse.Namespace, settings: DeviceSettings, url: BrokerUrl
) -> tuple[Path | None, Path | None, Path | None]:
    """CA, certificate and key files."""
    # Environment TLS files apply to mqtts:// only: they may be there for the monitor, and
    # must not turn a plain mqtt:// device command into a configuration error.
    env = url.tls
    return (
        args.tls_ca or (settings.mqtt_ca_file if env else None),
        args.tls_cert or (settings.mqtt_cert_file if env else None),
        args.tls_key or (settings.mqtt_key_file if env else None),
    )


def _setup_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(UtcTextFormatter())  # the monitor's format
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("clawbeat").setLevel(level)


# -- argument types ---------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _seconds(text: str) -> float:
    value = _float(text)
    if not protocol.MIN_INTERVAL <= value <= protocol.MAX_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"must be {protocol.MIN_INTERVAL}..{protocol.MAX_INTERVAL:g} seconds, got {text}"
        )
    return value


def _fraction(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _keepalive(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= protocol.MAX_KEEPALIVE:
        raise argparse.ArgumentTypeError(
            f"must be 1..{protocol.MAX_KEEPALIVE} seconds (protocol v1), got {text}"
        )
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (the ``clawbeat`` console script wires the same parsers)."""
    parser = argparse.ArgumentParser(prog="clawbeat", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_device_parser(subparsers)
    add_simulate_parser(subparsers)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

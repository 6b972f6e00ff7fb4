"""``clawbeat devices ...`` and ``clawbeat classes ...``: ops changes.

Changes are written to the database and announced by bumping a configuration version
that the running monitor polls; the monitor applies them to its engine and pushes
interval changes to devices on their retained config topics.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, cast

from device_client.protocol import validate_device_id
from monitor.alerts import api as alerts_api
from monitor.cli_common import add_database_option, db_session, settings_from
from monitor.cli_table import print_table
from monitor.liveness.policy import DEFAULT_GRACE, DEFAULT_LOST_AFTER, DEFAULT_MISSED_LIMIT
from monitor.ops.classes import ClassSettings, change_class, remove_class
from monitor.ops.devices import DeviceSettings, change_device
from monitor.ops.forget import Forgotten, forget_device
from monitor.store import reports
from monitor.store.reports import DeviceClass


def add_manage_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devices = subparsers.add_parser("devices", help="change a device: interval, class, ...")
    dsub = devices.add_subparsers(dest="devices_command", required=True, metavar="COMMAND")
    p = dsub.add_parser("set-interval", help="override a device's interval (pushed to it)")
    p.add_argument("device_id")
    p.add_argument("seconds", help="seconds, or 'clear' to drop the override")
    add_database_option(p)
    p.set_defaults(func=_set_interval)
    p = dsub.add_parser("set-class", help="put a device in a class")
    p.add_argument("device_id")
    p.add_argument("class_name")
    add_database_option(p)
    p.set_defaults(func=_set_class)
    p = dsub.add_parser("maintenance", help="suspend (on) or resume (off) timing of a device")
    p.add_argument("device_id")
    p.add_argument("mode", choices=["on", "off"])
    add_database_option(p)
    p.set_defaults(func=_maintenance)
    p = dsub.add_parser("forget", help="delete a device and its history")
    p.add_argument("device_id")
    add_database_option(p)
    p.set_defaults(func=_forget)

    classes = subparsers.add_parser("classes", help="device classes (criticality, timing)")
    csub = classes.add_subparsers(dest="classes_command", required=True, metavar="COMMAND")
    p = csub.add_parser("list", help="list classes")
    add_database_option(p)
    p.set_defaults(func=_list_classes)
    p = csub.add_parser(
        "set",
        help="create a class or change some of its settings",
        description="Create a class, or change the settings given of an existing one; the "
        "settings not given keep their values (a new class starts from the defaults: "
        f"grace {DEFAULT_GRACE:g} s, missed limit {DEFAULT_MISSED_LIMIT}, lost after "
        f"{DEFAULT_LOST_AFTER:g} s).",
    )
    p.add_argument("name")
    # SUPPRESS: a setting not given is absent from args, so it is left unchanged.
    p.add_argument(
        "--interval",
        dest="class_interval",
        type=_seconds_or("device"),
        default=argparse.SUPPRESS,
        metavar="SECONDS|device",
        help="expected seconds between heartbeats; 'device': trust what each device announces",
    )
    p.add_argument(
        "--grace",
        dest="class_grace",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="slack before a silent device is late",
    )
    p.add_argument(
        "--missed-limit",
        dest="class_missed_limit",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="missed intervals before stale",
    )
    p.add_argument(
        "--lost-after",
        dest="class_lost_after",
        type=_seconds_or("never"),
        default=argparse.SUPPRESS,
        metavar="SECONDS|never",
        help="seconds stale or offline before lost",
    )
    p.add_argument("--description", dest="class_description", default=argparse.SUPPRESS)
    add_database_option(p)
    p.set_defaults(func=_set_class_spec)
    p = csub.add_parser("remove", help="delete an unused class")
    p.add_argument("name")
    add_database_option(p)
    p.set_defaults(func=_remove_class)


def _change(args: argparse.Namespace, action: str) -> int:
    async def run() -> None:
        async with db_session(settings_from(args).database_url) as session:
            settings: DeviceSettings
            if action == "interval":
                seconds = None if args.seconds == "clear" else float(args.seconds)
                settings = {"interval": seconds}
            elif action == "class":
                settings = {"class_name": args.class_name}
            else:
                settings = {"maintenance": args.mode == "on"}
            await change_device(
                session,
                device_id=validate_device_id(args.device_id),
                settings=settings,
                now=datetime.now(UTC),
            )
            await session.commit()

    if action == "interval" and args.seconds != "clear":
        try:
            float(args.seconds)
        except ValueError:
            print(f"invalid seconds {args.seconds!r}: a number or 'clear'", file=sys.stderr)
            return 2
    asyncio.run(run())
    print("ok (the running monitor applies it within a second)")
    return 0


def _set_interval(args: argparse.Namespace) -> int:
    return _change(args, "interval")


def _set_class(args: argparse.Namespace) -> int:
    return _change(args, "class")


def _maintenance(args: argparse.Namespace) -> int:
    return _change(args, "maintenance")


def _forget(args: argparse.Namespace) -> int:
    async def run() -> Forgotten:
        async with db_session(settings_from(args).database_url) as session:
            done = await forget_device(
                session,
                device_id=args.device_id,
                now=datetime.now(UTC),
                resolve_alerts=alerts_api.resolve_forgotten,
            )
            await session.commit()
            return done

    done = asyncio.run(run())
    alerts = "; its open alert resolved" if done.alerts_resolved else ""
    print(
        f"forgot {done.device_id} and its history{alerts} (the monitor clears what the "
        "broker retains for it)"
    )
    return 0


def _list_classes(args: argparse.Namespace) -> int:
    async def run() -> list[tuple[str, ...]]:
        async with db_session(settings_from(args).database_url) as session:
            return [
                (
                    c.name,
                    str(c.interval or "device"),
                    str(c.grace),
                    str(c.missed_limit),
                    str(c.lost_after or "never"),
                    c.description,
                )
                for c in await reports.list_classes(session)
            ]

    print_table(
        ("CLASS", "INTERVAL", "GRACE", "MISSED", "LOST AFTER", "DESCRIPTION"), asyncio.run(run())
    )
    return 0


def _seconds_or(word: str) -> Callable[[str], float | None]:
    """An argparse type: a number of seconds, or ``word`` for ``None``."""

    def parse(text: str) -> float | None:
        if text == word:
            return None
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number of seconds or {word!r}") from None

    return parse


_CLASS_SETTINGS: Final = ("interval", "grace", "missed_limit", "lost_after", "description")


def _set_class_spec(args: argparse.Namespace) -> int:
    name = validate_device_id(args.name)
    given = {k: getattr(args, f"class_{k}") for k in _CLASS_SETTINGS if hasattr(args, f"class_{k}")}
    settings = cast(ClassSettings, given)

    async def run() -> tuple[DeviceClass, bool]:
        async with db_session(settings_from(args).database_url) as session:
            changed = await change_class(session, name=name, settings=settings, create=True)
            await session.commit()
            return changed.device_class, changed.created

    cls, created = asyncio.run(run())
    print(
        f"class {cls.name!r} {'created' if created else 'saved'}: interval "
        f"{cls.interval if cls.interval is not None else 'device'}, grace {cls.grace:g}, "
        f"missed limit {cls.missed_limit}, lost after "
        f"{'never' if cls.lost_after is None else format(cls.lost_after, 'g')}"
    )
    return 0


def _remove_class(args: argparse.Namespace) -> int:
    async def run() -> None:
        async with db_session(settings_from(args).database_url) as session:
            await remove_class(session, name=args.name)
            await session.commit()

    asyncio.run(run())
    print(f"class {args.name!r} removed")
    return 0

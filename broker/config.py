"""Render the project's ``mosquitto.conf`` for a concrete run directory and ports.

The repository's ``mosquitto.conf`` is the single source of truth: the local runner and
the test harness both start Mosquitto from it, changing only listener ports and paths, so
tests exercise the configuration operators deploy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from broker.errors import BrokerToolError

# Directives whose value is a path, rewritten to the run directory when requested.
PATH_DIRECTIVES = (
    "password_file",
    "acl_file",
    "persistence_location",
    "cafile",
    "certfile",
    "keyfile",
)


def render_config(
    template: str,
    *,
    ports: Sequence[int],
    paths: Mapping[str, Path],
    bind: str = "127.0.0.1",
    extra: Sequence[str] = (),
) -> str:
    """Rewrite listener ports and path directives of a Mosquitto config.

    Args:
        template: the text of ``mosquitto.conf``.
        ports: new ports for the ``listener`` lines, in order of appearance.
        paths: directive name -> replacement path (e.g. ``{"password_file": ...}``).
        bind: address every listener binds to.
        extra: lines appended at the end (e.g. ``log_dest file ...``).
    """
    out: list[str] = []
    listener = 0
    for line in template.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            out.append(line)
            continue
        key = words[0]
        if key == "listener":
            if listener >= len(ports):
                raise BrokerToolError(
                    f"mosquitto.conf has more listeners than the {len(ports)} port(s) given"
                )
            out.append(f"listener {ports[listener]} {bind}")
            listener += 1
        elif key in paths:
            value = str(paths[key])
            if key == "persistence_location" and not value.endswith("/"):
                value += "/"
            out.append(f"{key} {value}")
        else:
            out.append(line)
    if listener != len(ports):
        raise BrokerToolError(
            f"mosquitto.conf has {listener} listener(s) but {len(ports)} port(s) were given"
        )
    out.extend(extra)
    return "\n".join(out) + "\n"


def listener_count(template: str) -> int:
    return sum(1 for line in template.splitlines() if line.split()[:1] == ["listener"])

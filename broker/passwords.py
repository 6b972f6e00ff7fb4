"""Broker users, hashed by Mosquitto's own ``mosquitto_passwd``.

Adding thousands of users one ``mosquitto_passwd -b`` call at a time is slow, so users
are written as plain ``name:password`` lines to a private temp file, hashed in one
``mosquitto_passwd -U`` run, and merged into the password file (replacing any old entry
for the same name). Plain text never lands in the real password file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from broker.errors import BrokerToolError

# What would break the password file itself. The CLI applies the stricter device id rule
# to every name it is given; the test harness uses this module directly to provision
# hostile names on purpose (the monitor must drop what such users publish).
_FORBIDDEN = frozenset(":\n\r")


def mosquitto_passwd() -> str:
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        raise BrokerToolError(
            "mosquitto_passwd not found: install Mosquitto (Debian: apt-get install mosquitto)"
        )
    return exe


def _read(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, hashed = line.partition(":")
            if sep and name:
                entries[name] = hashed
    return entries


def _write(path: Path, entries: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # The file holds password hashes: keep it private, and replace atomically so a
    # broker reloading (SIGHUP) mid-write never reads half a file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{name}:{hashed}\n" for name, hashed in entries.items())
    tmp.replace(path)


def add_users(path: Path, users: Mapping[str, str]) -> None:
    """Add or replace users in a Mosquitto password file.

    Args:
        path: the password file (created if missing).
        users: username -> plain password.
    """
    for name, password in users.items():
        if not name or _FORBIDDEN & set(name) or _FORBIDDEN & set(password):
            raise BrokerToolError(f"invalid username or password for {name!r}")
        if not password:
            raise BrokerToolError(f"empty password for {name!r}")
    if not users:
        return
    with tempfile.TemporaryDirectory(prefix="clawbeat-passwd-") as tmpdir:
        plain = Path(tmpdir) / "plain"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{name}:{password}\n" for name, password in users.items())
        result = subprocess.run(
            [mosquitto_passwd(), "-U", str(plain)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise BrokerToolError(f"mosquitto_passwd failed: {result.stderr.strip()}")
        hashed = _read(plain)
    entries = _read(path)
    entries.update(hashed)
    _write(path, entries)


def remove_user(path: Path, name: str) -> bool:
    entries = _read(path)
    if entries.pop(name, None) is None:
        return False
    _write(path, entries)
    return True


def list_users(path: Path) -> list[str]:
    return sorted(_read(path))

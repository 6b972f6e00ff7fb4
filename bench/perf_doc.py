"""What benchmarks share: the machine they ran on, and their sections of docs/performance.md.

Each benchmark owns one marked section of docs/performance.md and rewrites only that.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psutil

REPO: Final = Path(__file__).resolve().parent.parent
PERF_DOC: Final = REPO / "docs" / "performance.md"


def marks(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(name: str, body: str, path: Path = PERF_DOC) -> None:
    """Put ``body`` between ``name``'s marks, appending the section if it is new."""
    start, end = marks(name)
    section = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Performance\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mosquitto = "unknown"
    if exe := shutil.which("mosquitto") or "/usr/sbin/mosquitto":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            cmd = [exe, "-h"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
            mosquitto = (out.stdout or out.stderr).splitlines()[0].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mosquitto": mosquitto,
        "paho_mqtt": _version("paho-mqtt"),
        "aiomqtt": _version("aiomqtt"),
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def finish(
    name: str,
    report: dict[str, Any],
    render: Callable[[dict[str, Any], dict[str, Any]], str],
    *,
    write_doc: bool,
) -> None:
    """Add the machine to ``report``, print it as JSON, and rewrite ``name``'s section."""
    report["machine"] = m = machine()
    print(json.dumps(report, indent=2))
    if write_doc:
        replace_section(name, render(report, m))

"""Node-RED for the watchdog benchmark: installed with npm into a cache directory, run
headless on the flow in ``bench/nodered/``.

The install is the pinned version in ``bench/nodered/package.json``, reused while it is
present; ``CLAWBEAT_BENCH_CACHE`` moves the cache (default ``~/.cache/clawbeat-bench``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import IO, Final

NODERED_DIR: Final = Path(__file__).resolve().parent / "nodered"
MIN_NODE_MAJOR: Final = 18  # Node-RED 4's own requirement


class NodeRedUnavailable(RuntimeError):
    """Node-RED cannot run here; the message is one line saying why."""


def pinned_version() -> str:
    manifest = json.loads((NODERED_DIR / "package.json").read_text())
    version: str = manifest["dependencies"]["node-red"]
    return version


def cache_dir() -> Path:
    if configured := os.environ.get("CLAWBEAT_BENCH_CACHE"):
        return Path(configured) / "node-red"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "clawbeat-bench" / "node-red"


def node_major(version_output: str) -> int | None:
    """The major version in ``node --version`` output (``v20.11.1``), if any."""
    match = re.match(r"\s*v?(\d+)\.", version_output)
    return int(match.group(1)) if match else None


def check_tools() -> tuple[str, str]:
    """The ``node`` and ``npm`` executables, or :class:`NodeRedUnavailable`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        raise NodeRedUnavailable(f"{missing} not found on PATH (Node-RED 4 needs Node.js 18+)")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = node_major(out.stdout)
    if major is None or major < MIN_NODE_MAJOR:
        found = out.stdout.strip() or "unknown"
        raise NodeRedUnavailable(f"Node.js {found} is too old (Node-RED 4 needs 18+)")
    return node, npm


def install(npm: str, cache: Path | None = None) -> Path:
    """Node-RED's ``red.js`` in the cache, installed with npm unless already there."""
    cache = cache or cache_dir()
    version = pinned_version()
    red = cache / "node_modules" / "node-red" / "red.js"
    installed = cache / "node_modules" / "node-red" / "package.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(installed.read_text())["version"] == version and red.is_file():
            return red
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(NODERED_DIR / "package.json", cache / "package.json")
    result = subprocess.run(
        [npm, "install", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cache,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not red.is_file():
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise NodeRedUnavailable(f"npm install node-red@{version} in {cache} failed: {lines[-1]}")
    return red


class NodeRed:
    """One headless Node-RED process running the watchdog flow against a broker."""

    def __init__(
        self, node: str, red: Path, user_dir: Path, *, host: str, port: int, user: str, pw: str
    ) -> None:
        user_dir.mkdir(parents=True, exist_ok=True)
        self.user_dir = user_dir
        flows = json.loads((NODERED_DIR / "flows.json").read_text())
        (user_dir / "flows.json").write_text(json.dumps(flows, indent=2))
        # credentialSecret is false in settings.js: the credentials file is plain JSON.
        (broker,) = (n["id"] for n in flows if n["type"] == "mqtt-broker")
        (user_dir / "flows_cred.json").write_text(
            json.dumps({broker: {"user": user, "password": pw}})
        )
        self.command = [
            node,
            str(red),
            "--settings",
            str(NODERED_DIR / "settings.js"),
            "--userDir",
            str(user_dir),
        ]
        self.env = {
            **os.environ,
            "CLAWBEAT_BENCH_MQTT_HOST": host,
            "CLAWBEAT_BENCH_MQTT_PORT": str(port),
            "CLAWBEAT_BENCH_MQTT_USER": user,
        }
        self.log_path = user_dir / "node-red.log"
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGCONT)  # in case it was left stopped
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

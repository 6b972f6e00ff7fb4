"""``clawbeat broker run``: a real Mosquitto in the foreground, stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from broker.runner import free_port
from tests.harness.monitor import wait_until
from tests.harness.mosquitto import REPO, check_mosquitto_installed

# The runner gives Mosquitto 10 s to exit on SIGTERM before killing it; allow that, the
# Python start-up and a loaded machine. A runner that deadlocks never exits at all.
EXIT_TIMEOUT = 40.0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_broker_run_exits_with_its_mosquitto_on_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    missing = check_mosquitto_installed()
    if missing:
        pytest.fail(missing, pytrace=False)
    port = free_port()
    tls_port = free_port(exclude=(port,))
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "monitor.cli", "broker", "run",
            "--run-dir", str(tmp_path / "broker"), "--config", str(REPO / "mosquitto.conf"),
            "--port", str(port), "--tls-port", str(tls_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )  # fmt: skip
    mosquitto: list[int] = []
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert f"mosquitto on 127.0.0.1:{port}" in banner, banner + proc.stdout.read()
        mosquitto += wait_until(lambda: _children(proc.pid), 10, what="the mosquitto child")
        assert len(mosquitto) == 1
        proc.send_signal(signum)
        try:
            rc = proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`clawbeat broker run` still running {EXIT_TIMEOUT}s after {signum.name}")
        assert rc == 0, proc.stdout.read()
        # Mosquitto runs in its own session: only the runner can have stopped it.
        wait_until(lambda: not _alive(mosquitto[0]), 10, what="mosquitto to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in mosquitto:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

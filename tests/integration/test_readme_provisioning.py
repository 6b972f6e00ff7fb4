"""The README's device provisioning step, run as written against the demo's broker layout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.harness.monitor import wait_until
from tests.harness.mosquitto import REPO, TestBroker
from tests.mqtt_helpers import MqttProbe


def _readme_block(containing: str) -> list[str]:
    """The command lines of the README's ``sh`` block that contains ``containing``."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"the README has no single sh block with {containing!r}"
    return [line for line in found[0].splitlines() if line.strip()]


def _accepted(broker: TestBroker, user: str, password: str) -> bool:
    probe = MqttProbe(broker.url(user, password))
    try:
        return not probe.connect().is_failure
    finally:
        probe.close()


def test_readme_provisioning_reaches_the_demo_broker(tmp_path: Path) -> None:
    # The demo runs its broker in run/broker/ below the directory `make run` starts in.
    broker = TestBroker(tmp_path / "run" / "broker")
    broker.start()
    try:
        (tmp_path / "pw.txt").write_text("pump-7-secret\n")
        # The README's commands name the checkout's .venv/bin/clawbeat.
        (tmp_path / ".venv").symlink_to(Path(sys.prefix))
        assert not _accepted(broker, "pump-7", "pump-7-secret")
        for line in _readme_block("add-user pump-7"):
            result = subprocess.run(
                ["sh", "-c", line], cwd=tmp_path, capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, f"{line}: {result.stderr}"
        # The reload is asynchronous: poll for the new user.
        wait_until(lambda: _accepted(broker, "pump-7", "pump-7-secret"), 10, what="pump-7 accepted")
    finally:
        broker.stop()


def test_the_default_password_file_is_ignored_by_git() -> None:
    # `clawbeat broker add-user` writes broker/passwd unless told otherwise: hashes must
    # not be one `git add -A` away from a commit.
    result = subprocess.run(["git", "check-ignore", "-q", "broker/passwd"], cwd=REPO, check=False)
    assert result.returncode == 0

"""Run the real monitor (``python -m monitor.cli monitor``) as a process for tests.

Tests drive it from outside — devices, the broker, SIGKILL — and observe it the way ops
do: retained status topics on the broker and rows in the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe


class MonitorProcess:
    """One monitor process; ``start()`` waits until its presence is online."""

    __test__ = False

    def __init__(
        self,
        broker: TestBroker,
        database_url: str,
        log_path: Path,
        **settings: object,
    ) -> None:
        self.broker = broker
        self.database_url = database_url
        self.log_path = log_path
        self.env = {
            **os.environ,
            "CLAWBEAT_MQTT_URL": broker.url(),
            "CLAWBEAT_DATABASE_URL": database_url,
            "CLAWBEAT_LOG_LEVEL": "DEBUG",
            "CLAWBEAT_MQTT_KEEPALIVE": "5",
        }
        for key, value in settings.items():
            self.env[f"CLAWBEAT_{key.upper()}"] = str(value)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def upgrade_schema(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "monitor.cli", "db", "upgrade"],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 20.0) -> None:
        self._log = self.log_path.open("ab")
        probe = MqttProbe(self.broker.url(self.broker.ops_user), client_id=self.broker.ops_user)
        probe.connect()
        probe.subscribe(f"{self.broker_root}/monitor/presence")
        started = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "monitor"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            probe.wait_for(
                lambda m: m.at >= started and json.loads(m.payload)["state"] == "online",
                timeout=timeout,
            )
        except TimeoutError as exc:
            raise AssertionError(f"monitor did not come online:\n{self.log_tail()}") from exc
        finally:
            probe.close()

    broker_root = "clawbeat/v1"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(10)
        self._close_log()

    def terminate(self, timeout: float = 20.0) -> int:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        code = self._proc.wait(timeout)
        self._close_log()
        return code

    def stop(self) -> None:
        if self.running():
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

"""A real nats-server (with its MQTT gateway) for tests, and a core NATS subscriber.

The server runs from a config written here: a free client port, a free MQTT port, a
JetStream store in the test's directory (the MQTT gateway keeps its sessions there) and
the subject mappings the test names. The subscriber speaks the NATS text protocol over
a plain socket (CONNECT, SUB, PING, MSG): enough to see which subject a message landed
on without a client library.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from broker.runner import free_port

NATS_BINARIES: Final = ("/usr/sbin/nats-server", "nats-server")


def nats_server_binary() -> str | None:
    for candidate in NATS_BINARIES:
        if found := shutil.which(candidate):
            return found
    return None


class NatsServer:
    """One nats-server process with MQTT enabled, stopped by :meth:`stop`."""

    def __init__(self, run_dir: Path, *, mappings: Mapping[str, str]) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server is not installed: `apt-get install nats-server`")
        self.binary = binary
        self.run_dir = run_dir
        self.port = free_port()
        self.mqtt_port = free_port(exclude={self.port})
        self.mappings = dict(mappings)
        self._proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        # JSON strings are valid NATS config strings, quoting the mapping braces safely.
        lines = [
            f"server_name: clawbeat_test_{self.port}",
            f"listen: 127.0.0.1:{self.port}",
            f"jetstream {{ store_dir: {json.dumps(str(self.run_dir / 'jetstream'))} }}",
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}",
            "mappings {",
            *(f"  {json.dumps(src)}: {json.dumps(dst)}" for src, dst in self.mappings.items()),
            "}",
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "nats.conf"
        conf.write_text(self._config())
        log = (self.run_dir / "nats.log").open("wb")
        self._proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                output = (self.run_dir / "nats.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nats-server exited ({self._proc.returncode}):\n{output}")
            ready = all(_accepts(port) for port in (self.port, self.mqtt_port))
            if ready:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not listen within {timeout}s")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


class CoreSubscriber:
    """A core NATS connection subscribed to one subject filter, collecting subjects."""

    def __init__(self, port: int, subject: str) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._file = self._sock.makefile("rb")
        self._file.readline()  # INFO
        self._sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false}\r\n'
            + f"SUB {subject} 1\r\nPING\r\n".encode()
        )
        if self._file.readline().strip() != b"PONG":  # the SUB is in place once PONG comes
            raise RuntimeError("nats-server did not answer PING")
        self.subjects: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name="nats-sub")
        self._thread.start()

    def _read(self) -> None:
        self._sock.settimeout(None)
        with contextlib.suppress(OSError, ValueError):
            while line := self._file.readline():
                if line.startswith(b"PING"):
                    self._sock.sendall(b"PONG\r\n")
                elif line.startswith(b"MSG "):
                    # MSG <subject> <sid> [reply-to] <#bytes>
                    parts = line.split()
                    self._file.read(int(parts[-1]) + 2)
                    with self._lock:
                        self.subjects.append(parts[1].decode())

    def received(self) -> list[str]:
        with self._lock:
            return list(self.subjects)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)

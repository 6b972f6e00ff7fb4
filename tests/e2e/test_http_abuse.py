"""Hostile HTTP clients against a real monitor process, over raw sockets.

Bodies: the token is checked before a body is read, bodies are capped (413) and must
arrive in time (408). Tokens: wrong ones are budgeted per client address (429 with
``Retry-After``), and a client at another address is not affected. The other address
is 127.0.0.2: the whole of 127.0.0.0/8 is the loopback interface on Linux.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.harness.monitor import MonitorProcess, StatusWatch, wait_until
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BODY_TIMEOUT = 1.0
MAX_BODY = 64 * 1024
# How long a test waits for an answer that must come: far above anything the server
# needs, so only "no answer at all" fails it.
ANSWER_WITHIN = 30.0
_LISTENING = re.compile(r"HTTP API and dashboard on http://([\d.]+):(\d+)/?$", re.MULTILINE)


@dataclass(frozen=True)
class Server:
    proc: MonitorProcess
    host: str
    port: int
    admin_token: str


@pytest.fixture
def server(broker: TestBroker, database_url: str, tmp_path: Path) -> Iterator[Server]:
    proc = MonitorProcess(
        broker,
        database_url,
        tmp_path / "monitor.log",
        http_bind="127.0.0.1:0",
        http_body_timeout=BODY_TIMEOUT,
        http_max_body=MAX_BODY,
    )
    watch = StatusWatch(broker)
    try:
        proc.start(probe=watch)
    finally:
        watch.close()
    try:

        def address() -> tuple[str, int] | None:
            match = _LISTENING.search(proc.log_path.read_text(errors="replace"))
            return (match.group(1), int(match.group(2))) if match else None

        host, port = wait_until(address, 10, what="the monitor's HTTP address in its log")
        created = proc.cli("token", "create", "--scope", "admin", "--name", "t", "--json")
        yield Server(proc, host, port, json.loads(created.stdout)["token"])
    finally:
        proc.stop()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _connect(server: Server, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(
        (server.host, server.port), timeout=ANSWER_WITHIN, source_address=(source, 0)
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: monitor",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_answer(sock: socket.socket) -> Answer:
    """One HTTP response; raises TimeoutError if none comes within ANSWER_WITHIN."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed without an answer (got {data!r})")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(int(status_line.split()[1]), headers, rest[:length])


def _request(
    server: Server,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes = b"",
    source: str = "127.0.0.1",
) -> Answer:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with _connect(server, source) as sock:
        sock.sendall(_head(method, path, headers) + body)
        return _read_answer(sock)


def _live(server: Server) -> None:
    answer = _request(server, "GET", "/health/live")
    assert answer.status == 200, answer


def test_an_unauthenticated_body_announced_but_never_sent_is_answered_at_once(
    server: Server,
) -> None:
    # 100 MB announced, 1 KiB sent, then silence: before the token check came first,
    # the server waited for the rest forever.
    with _connect(server) as sock:
        head = {"Content-Type": "application/json", "Content-Length": str(100_000_000)}
        sock.sendall(_head("PATCH", "/api/devices/pump-1", head) + b"[" * 1024)
        answer = _read_answer(sock)
    assert answer.status == 401, answer
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.headers["connection"] == "close"
    _live(server)


def test_an_unauthenticated_large_body_is_refused_without_being_read(server: Server) -> None:
    body_size = 96 * 1024 * 1024
    process = psutil.Process(server.proc.pid)
    before = process.memory_info().rss
    chunk = b"[" * (1024 * 1024)
    sent = 0
    answer: Answer | None = None
    with _connect(server) as sock:
        head = {"Content-Type": "application/json", "Content-Length": str(body_size)}
        sock.sendall(_head("PUT", "/api/rules/r1", head))
        try:
            while sent < body_size:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: the rest was never going to be read
        try:
            answer = _read_answer(sock)
        except (ConnectionResetError, AssertionError):
            answer = None  # the reset may have thrown the answer away; asked again below
    grown = process.memory_info().rss - before
    # Parsing 96 MB of JSON costs the server several times that; refusing it costs
    # nothing. 32 MiB leaves room for anything else the process does meanwhile.
    assert grown < 32 * 1024 * 1024, f"the monitor grew by {grown / 2**20:.0f} MiB"
    if answer is not None:
        assert answer.status == 401, answer
    _live(server)


def test_bodies_are_capped_and_must_arrive_in_time(server: Server) -> None:
    token = server.admin_token
    # Announced too large: refused before it is sent.
    with _connect(server) as sock:
        head = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Length": str(MAX_BODY + 1),
        }
        sock.sendall(_head("PATCH", "/api/devices/pump-1", head))
        answer = _read_answer(sock)
    assert answer.status == 413, answer
    assert str(MAX_BODY) in json.loads(answer.body)["detail"]

    # Chunked, so no length is announced: refused once it grows past the cap.
    with _connect(server) as sock:
        head = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        }
        sock.sendall(_head("PATCH", "/api/devices/pump-1", head))
        piece = b" " * 16_384
        try:
            for _ in range(MAX_BODY // len(piece) + 2):
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_answer(sock)
    assert answer.status == 413, answer

    # A body that trickles: 10 of 1000 bytes, then nothing.
    with _connect(server) as sock:
        head = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Length": "1000",
        }
        sock.sendall(_head("PATCH", "/api/devices/pump-1", head) + b'{"tags": [')
        started = time.monotonic()
        answer = _read_answer(sock)
    assert answer.status == 408, answer
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9
    assert answer.headers["connection"] == "close"

    # And a body that is fine still works, on a monitor that never blocked.
    ok = _request(
        server, "PUT", "/api/classes/fast", token=token, body=json.dumps({"grace": 2}).encode()
    )
    assert ok.status == 200, ok
    assert json.loads(ok.body)["grace"] == 2
    _live(server)


def test_wrong_tokens_are_slowed_down_per_client_address(server: Server) -> None:
    limiter_burst = 20  # monitor.web.ratelimit.BURST
    statuses: list[int] = []
    started = time.monotonic()
    refused: Answer | None = None
    for i in range(300):
        answer = _request(server, "GET", "/api/me", token=f"cbt_wrong{i}")
        statuses.append(answer.status)
        if answer.status == 429:
            refused = answer
            break
        assert answer.status == 401, answer
    elapsed = time.monotonic() - started
    assert refused is not None, f"300 wrong tokens and no 429: {statuses[-5:]}"
    # The budget is BURST failures plus one per second of the time they took.
    assert statuses.count(401) <= limiter_burst + elapsed * 1.0 + 1, (statuses, elapsed)
    retry_after = int(refused.headers["retry-after"])
    assert retry_after >= 1
    # While refused, even a correct token from that address waits (no guess is checked).
    assert _request(server, "GET", "/api/me", token=server.admin_token).status == 429
    # Bodies too: refused before their body or their token is looked at.
    blocked = _request(
        server, "PATCH", "/api/devices/pump-1", token=f"cbt_{'x' * 40}", body=b'{"tags": []}'
    )
    assert blocked.status == 429, blocked

    # Another client address is not affected.
    other = _request(server, "GET", "/api/me", token=server.admin_token, source="127.0.0.2")
    assert other.status == 200, other
    assert json.loads(other.body)["scope"] == "admin"

    # The budget refills: after Retry-After the first address may try again.
    time.sleep(retry_after)

    def answered() -> Answer | None:
        again = _request(server, "GET", "/api/me", token=server.admin_token)
        return again if again.status == 200 else None

    wait_until(answered, 10 + retry_after, what="the address's budget to refill")

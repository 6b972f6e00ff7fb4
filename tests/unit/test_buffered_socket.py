"""BufferedSocket over a real socket pair: bytes in order, and a bounded turn."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from monitor.direct_client import _READ_CHUNK, _REFILLS_PER_TURN, BufferedSocket


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    right.setblocking(False)
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def _turn(sock: BufferedSocket, ask: int) -> bytes:
    """What one readiness event reads: ``ask``-byte pieces until "would block"."""
    out = bytearray()
    while True:
        try:
            data = sock.recv(ask)
        except BlockingIOError:
            return bytes(out)
        if not data:
            return bytes(out)
        out += data


def test_every_byte_comes_out_in_order_through_odd_sized_reads(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    payload = os.urandom(5 * _READ_CHUNK + 123)
    left.sendall(payload)
    sock = BufferedSocket(right)
    got = bytearray()
    while piece := _turn(sock, ask=977):  # packet-like sizes straddle the chunks
        got += piece
    assert got == payload


def test_a_turn_reads_a_bounded_number_of_chunks_then_yields(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.sendall(b"x" * (6 * _READ_CHUNK))
    sock = BufferedSocket(right)
    first = _turn(sock, ask=1000)
    # It stopped although the kernel holds more: only the per-turn chunks were read,
    # and nothing is left in the buffer that epoll could not wake the reader for.
    assert len(first) == _REFILLS_PER_TURN * _READ_CHUNK
    assert sock.pending() == 0
    # The next turns go on where this one stopped.
    rest = bytearray()
    while piece := _turn(sock, ask=1000):
        rest += piece
    assert len(first) + len(rest) == 6 * _READ_CHUNK


def test_end_of_stream_reads_empty(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(b"last")
    left.close()
    sock = BufferedSocket(right)
    assert sock.recv(100) == b"last"
    assert sock.recv(100) == b""
    assert sock.fileno() == right.fileno()  # everything else passes through

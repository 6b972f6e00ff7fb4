"""A loopback TCP proxy that can blackhole its traffic, for link faults between two processes.

``blackhole()`` stops moving bytes in both directions without closing anything, as a
firewall dropping packets (or a dead route) does: neither end gets an error, writes pile
up in the kernel's buffers, and TCP keepalive or the application's own timeouts are the
only way to notice. ``restore()`` lets everything held through, as TCP retransmission
does when the path comes back. New connections made while blackholed hang the same way.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target``; one thread per connection."""

    __test__ = False

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.connections = 0
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="tcp-proxy")
        self._acceptor.start()

    @property
    def blackholed(self) -> bool:
        return not self._flowing.is_set()

    def blackhole(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        # The upstream connection is made at once (the broker sees it; the client
        # cannot tell), but not a byte moves while blackholed.
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, upstream]
            self.connections += 1
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                self._flowing.wait()
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    # Waiting here again: bytes read just before a blackhole are held,
                    # not delivered, until it is lifted.
                    data = sock.recv(65536)
                    if not data:
                        return
                    self._flowing.wait()
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

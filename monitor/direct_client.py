"""An aiomqtt client that reads in large chunks and hands each message straight to a handler.

Why not ``async for message in client.messages``: aiomqtt's iterator costs, per message,
a ``Message`` object with a validated ``Topic``, a queue put, a new task for the queue
get and an ``asyncio.wait`` on it and the disconnect future — a trip round the event
loop for every message. Measured with ``bench/bench_monitor.py``'s receivers on the
same broker and backlog, a loop that only counts drains about 13,000 messages/s through
the iterator and about 24,000/s through this class: the iterator is half the monitor's
receive budget at 10,000 heartbeats/s.

Why this is safe: aiomqtt drives paho from the event loop (``loop.add_reader``), and
paho calls ``on_message`` synchronously inside ``loop_read``, so the handler runs on the
event loop thread, in arrival order, before paho acknowledges the next packet — exactly
where the iterator's consumer would have run, minus the queue.

Why the socket is buffered: paho reads every packet with at least three ``recv`` calls
(the command byte, each byte of the remaining length, then the rest) and aiomqtt runs
``loop_read`` once per readiness event, so each message also costs a trip through
``epoll``. :class:`BufferedSocket` reads up to 64 KiB per ``recv`` (hundreds of
heartbeats) and reports what it holds through ``pending()``, which aiomqtt's reader
already polls (it does so for TLS sockets, whose decrypted bytes ``epoll`` cannot see),
so one readiness event drains everything that has arrived. Measured the same way, the
counting loop goes from about 25,000 to about 50,000 messages/s.

aiomqtt has no public hook for any of this; the class overrides the two methods through
which paho's socket and messages enter aiomqtt (``Client._on_socket_open`` and
``Client._on_message``, both unchanged since aiomqtt 2.0) and replaces paho's socket
object (``paho.Client._sock``, which every paho read and write goes through) with the
wrapper, and replaces paho's empty per-topic callback table (``_NoTopicCallbacks``).
It also overrides ``Client._on_connect`` to keep the CONNACK's session-present flag (the
link resumes its broker session across reconnections), and reaches paho directly for
a publish nobody waits on (the link probe) and for a DISCONNECT that ends the session.
aiomqtt's three methods are checked at import, so a release that renamed them fails
loudly instead of silently receiving nothing; paho's two attributes are checked where
they are used, and a paho without them only costs speed.
``tests/integration/test_mqtt_link.py`` covers the behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections import deque
from collections.abc import Callable
from importlib.metadata import version
from time import monotonic, time
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.logging_setup import RateLimitedLog

# A message handler gets (topic, payload, retained, monotonic receive time, wall time).
MessageHandler = Callable[[str, bytes, bool, float, float], None]

_READ_CHUNK = 65536
# Chunks read per readiness event before yielding to the event loop (see BufferedSocket):
# about 800 heartbeats, some 40 ms of the monitor's work.
_REFILLS_PER_TURN = 2

# aiomqtt's reader loops on ``pending()`` (which BufferedSocket relies on) since 2.5; the
# hooks below are checked against 2.5. pip enforces the same range from pyproject.toml;
# this catches an environment assembled without it.
_AIOMQTT_TESTED = ((2, 5), (2, 6))
_aiomqtt_version = tuple(int(n) for n in re.findall(r"\d+", version("aiomqtt"))[:2])
if not _AIOMQTT_TESTED[0] <= _aiomqtt_version < _AIOMQTT_TESTED[1] or not all(
    callable(getattr(aiomqtt.Client, name, None))
    for name in ("_on_message", "_on_socket_open", "_on_connect")
):  # pragma: no cover
    raise ImportError(
        f"aiomqtt {version('aiomqtt')} is installed; clawbeat's receive path needs "
        "aiomqtt>=2.5,<2.6 (see monitor/direct_client.py)"
    )


class BufferedSocket:
    """A socket whose ``recv`` is served from one large read; everything else passes through.

    paho asks for a few bytes at a time; this answers from a 64 KiB buffer and only
    touches the kernel when the buffer is empty. A short answer at the end of the buffer
    is fine: paho keeps a partial packet and asks again, and an empty non-blocking socket
    raises ``BlockingIOError`` (or ``SSLWantReadError``) exactly as before.

    aiomqtt's reader goes on while ``pending()`` is non-zero, and a chunk that ends in the
    middle of a packet leaves bytes pending, so without a limit one readiness event could
    go on reading for as long as the broker keeps sending, starving every other task
    (the deadline tick, keepalive, the HTTP API) and holding back our PUBACKs. So after
    ``_REFILLS_PER_TURN`` chunks, a refill answers ``BlockingIOError`` once instead: paho
    keeps its partial packet, the reader returns to the event loop, and since the rest
    is still in the kernel, ``epoll`` wakes it again on the next turn.
    """

    __slots__ = ("_buf", "_pos", "_refills", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self._refills = 0

    def recv(self, bufsize: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            if self._refills >= _REFILLS_PER_TURN:
                self._refills = 0
                raise BlockingIOError("yielding to the event loop")
            try:
                buf = bytes(self._sock.recv(_READ_CHUNK))
            except (BlockingIOError, ssl.SSLWantReadError):
                self._refills = 0  # the kernel is empty: this readiness event is over
                raise
            self._refills += 1
            if not buf:
                return buf  # end of stream: paho treats it as a lost connection
            self._buf, pos = buf, 0
        end = pos + bufsize
        self._pos = end
        return buf[pos:end]

    def pending(self) -> int:
        """Bytes readable without the kernel: ours, plus decrypted TLS bytes not yet read."""
        held = len(self._buf) - self._pos
        inner = getattr(self._sock, "pending", None)
        return max(held, 0) + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _NoTopicCallbacks:
    """Stands in for paho's per-topic callback table, which the monitor never fills.

    paho walks that table (a recursive generator over the topic's levels) for every
    message before calling ``on_message``; empty, it still cost about 7 % of the
    monitor's CPU at 18,000 heartbeats/s. Registering a per-topic callback on this
    client is a mistake (everything goes to the one handler), so it fails loudly.
    """

    def iter_match(self, _topic: str) -> tuple[()]:
        return ()

    def __setitem__(self, _topic: str, _callback: object) -> None:
        raise TypeError("DirectClient hands every message to one handler: no per-topic callbacks")

    def __delitem__(self, topic: str) -> None:
        raise KeyError(topic)


class DirectClient(aiomqtt.Client):
    """``aiomqtt.Client`` whose received messages go to :meth:`deliver_to`'s handler.

    Messages that arrive before a handler is attached (between subscribing and the
    caller being ready for them) are held in order and handed over on attach.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("socket_options"):
            # aiomqtt applies them only to a plain socket.socket, which paho no longer
            # holds once BufferedSocket wraps it: they would be dropped silently.
            raise ValueError("DirectClient does not support socket_options")
        super().__init__(*args, **kwargs)
        self._handler: MessageHandler | None = None
        self._held: deque[tuple[str, bytes, bool, float, float]] = deque()
        self._handler_log = RateLimitedLog(logging.getLogger("clawbeat.mqtt"))
        self.handler_errors = 0
        self._warned_unbuffered = False
        # The broker's CONNACK said it kept our session (MQTT 5 / clean_start=False).
        self.session_present = False
        paho_client = self._client
        if getattr(paho_client, "_on_message_filtered", None) is not None:
            paho_client._on_message_filtered = cast("Any", _NoTopicCallbacks())

    def deliver_to(self, handler: MessageHandler) -> None:
        while self._held:
            self._call(handler, self._held.popleft())
        self._handler = handler

    def _on_connect(  # aiomqtt's private hook, same signature
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: Any,
        properties: Any = None,
    ) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int) -> bool:
        """Hand a publish to paho without waiting for its PUBACK (the link probe).

        aiomqtt's ``publish`` would make the caller wait; the probe's answer is its echo.
        """
        info = self._client.publish(topic, payload, qos=qos, retain=False)
        return info.rc == paho.MQTT_ERR_SUCCESS

    def drop(self) -> None:
        """Disconnect now; the message stream ends and the link's reconnect loop runs."""
        self._client.disconnect()

    async def end_session(self, within: float) -> None:
        """Disconnect and tell the broker to drop our session (MQTT 5 session expiry 0).

        Only at a clean stop: the next start begins with a clean session anyway, and
        until then the broker would go on queueing the whole fleet's messages for us.
        """
        props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call] # paho is untyped here
        props.SessionExpiryInterval = 0
        if self._client.disconnect(properties=props) != paho.MQTT_ERR_SUCCESS:
            return
        with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
            await asyncio.wait_for(asyncio.shield(self._disconnected), within)

    def _on_socket_open(  # aiomqtt's private hook, same signature
        self,
        client: paho.Client,
        userdata: Any,
        sock: Any,
    ) -> None:
        # paho has just connected and stored ``sock`` as its socket; aiomqtt is about to
        # register it with the event loop. Only paho's own reference is replaced: the
        # loop watches the same file descriptor either way.
        if getattr(client, "_sock", None) is sock:
            client._sock = BufferedSocket(sock)
        elif not self._warned_unbuffered:
            # A paho that keeps its socket elsewhere: still correct, only slower.
            self._warned_unbuffered = True
            logging.getLogger("clawbeat.mqtt").warning(
                "this paho-mqtt keeps its socket elsewhere: reading unbuffered (slower)"
            )
        super()._on_socket_open(client, userdata, sock)

    def _on_message(  # aiomqtt's private hook, same signature
        self,
        client: paho.Client,  # noqa: ARG002 - paho's callback signature
        userdata: Any,  # noqa: ARG002
        message: paho.MQTTMessage,
    ) -> None:
        try:
            # paho decodes the topic as UTF-8; Mosquitto rejects invalid UTF-8 topics,
            # but a message must never be able to raise out of paho's read loop.
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        # bytes() of a bytes object is that object: no copy on the usual path.
        item = (topic, bytes(message.payload), bool(message.retain), monotonic(), time())
        handler = self._handler
        if handler is None:
            self._held.append(item)
        else:
            self._call(handler, item)

    def _call(self, handler: MessageHandler, item: tuple[str, bytes, bool, float, float]) -> None:
        try:
            handler(*item)
        except Exception:  # noqa: BLE001 - the last guard, see below
            # An exception here would unwind through paho's loop_read, and aiomqtt treats
            # that as a lost connection: one bad message would disconnect the monitor and
            # make it blind. Ingest drops bad input itself; this is the last guard.
            self.handler_errors += 1
            self._handler_log.exception(
                "handler_error", "message handler failed on %r; message dropped", item[0][:200]
            )

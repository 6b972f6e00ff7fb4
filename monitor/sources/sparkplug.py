"""Sparkplug B 3.0: births and deaths with bdSeq sessions, DATA as beats, seq duplicates.

Topics are ``spBv1.0/{group}/{type}/{edge_node}[/{device}]``; payloads are the protobuf
``Payload`` of ``sparkplug_b.proto``. clawbeat ids: ``{group}.{node}`` for an edge node and
``{group}.{node}.{device}`` for a device behind it (``id_prefix`` before both).

Rules
=====
  P1  NBIRTH starts a node session named by its ``bdSeq`` metric (and the birth
      timestamp, as nodes that do not persist bdSeq reuse it after a reboot). NDEATH —
      normally the node's will — names a bdSeq: the current one ends the session; any
      other is a late death of an older connection, passed on as a stale session the
      engine ignores.
  P2  DBIRTH starts a device session inside the node's; DDEATH ends it. A node's death
      ends every device behind it (and a new NBIRTH without a death in between ends the
      old node session's devices): a device is offline when it or its node dies.
  P3  NDATA and DDATA are beats of the node or device. Births are beats too.
  P4  ``seq`` (0-255, per node, across every message but NDEATH, reset by NBIRTH) is
      unwrapped into a counter that grows for the node's session; a repeated or older
      seq maps to a value not above what the engine saw, so the engine counts it a
      duplicate.
  P5  After a monitor restart (births are not retained) a node or device heard of first
      through DATA continues the session the engine persisted if it is alive, or starts
      one of unknown bdSeq; an NDEATH for such a node is taken for the current session.
      Devices behind a node are known from their births and DATA since the restart;
      with ``request_rebirth`` the monitor asks such a node for its births at once
      (NCMD ``Node Control/Rebirth``), once per node per run.
  P6  Payloads that do not parse, births without bdSeq and out-of-range seqs are malformed.
      NCMD/DCMD and the STATE topic are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf.message import DecodeError

from monitor.sources.base import too_large
from monitor.sources.events import (
    Beat,
    Command,
    Decoded,
    Ignored,
    Malformed,
    Offline,
    Online,
    SourceEvent,
)
from monitor.sources.resolve import SessionView
from monitor.sources.sparkplug_b_pb2 import Payload
from monitor.sources.topics import make_device_id

NAMESPACE: Final = "spBv1.0"
_NODE_TYPES: Final = frozenset({"NBIRTH", "NDEATH", "NDATA"})
_DEVICE_TYPES: Final = frozenset({"DBIRTH", "DDEATH", "DDATA"})
_COMMANDS: Final = frozenset({"NCMD", "DCMD"})
_UNKNOWN_BD: Final = "bdx"
_BOOLEAN: Final = 11  # Sparkplug datatype code


@dataclass
class _Node:
    session: str
    bd_seq: int | None
    epoch: int  # unwrapped seq counter base for this session (P4)
    count: int = 0
    last_raw: int | None = None
    devices: dict[str, str] = field(default_factory=dict)  # device id -> session
    # Metric names by alias, from births (DATA may name metrics by alias alone), per node
    # (key None) and per device.
    aliases: dict[str | None, dict[int, str]] = field(default_factory=dict)


def _bd_seq(payload: Payload) -> int | None:
    for metric in payload.metrics:
        if metric.name == "bdSeq":
            kind = metric.WhichOneof("value")
            if kind == "long_value":
                return metric.long_value
            if kind == "int_value":
                return metric.int_value
            return None
    return None


class SparkplugAdapter:
    """Stateful per edge node (sessions, device lists, seq counters); no I/O, no clock."""

    def __init__(
        self,
        name: str,
        *,
        interval: float = 60.0,
        group: str = "+",
        id_prefix: str = "",
        primary_host_id: str | None = None,
        request_rebirth: bool = False,
    ) -> None:
        self._name = name
        self.primary_host_id = primary_host_id
        self.request_rebirth = request_rebirth
        self._interval = interval
        self.group = group
        self.id_prefix = id_prefix
        self._nodes: dict[str, _Node] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def filters(self) -> tuple[str, ...]:
        return (f"{NAMESPACE}/{self.group}/#",)

    def decode(
        self, topic: str, payload: bytes, *, wall: float, view: SessionView
    ) -> Decoded | None:
        levels = topic.split("/")
        if len(levels) < 3 or levels[0] != NAMESPACE:
            return None
        if levels[1] == "STATE":
            return Ignored("host_state")
        if self.group != "+" and levels[1] != self.group:
            return None
        kind = levels[2]
        if kind in _COMMANDS:
            return Ignored("command")
        if kind in _NODE_TYPES:
            if len(levels) != 4:
                return Malformed("bad_topic", f"{kind} topic {topic!r} is not group/type/node")
        elif kind in _DEVICE_TYPES:
            if len(levels) != 5:
                return Malformed("bad_topic", f"{kind} topic {topic!r} has no device")
        else:
            return Malformed("bad_topic", f"unknown Sparkplug message type {kind!r}")
        node_id = make_device_id(self.id_prefix, levels[1], levels[3])
        if node_id is None:
            return Malformed("bad_device_id", f"no device id from {topic!r}")
        big = too_large(payload)
        if big is not None:
            return big
        try:
            msg = Payload.FromString(payload)
        except DecodeError as exc:
            return Malformed("invalid_payload", f"not a Sparkplug B payload ({exc})")
        ts = msg.timestamp / 1000.0 if msg.HasField("timestamp") else None
        raw_seq: int | None = None
        if kind != "NDEATH" and msg.HasField("seq"):
            raw_seq = msg.seq
            if raw_seq > 255:
                return Malformed("invalid_payload", f"seq {raw_seq} outside 0-255")
        if kind == "NBIRTH":
            return self._nbirth(node_id, msg, raw_seq, ts, wall)
        if kind == "NDEATH":
            return self._ndeath(node_id, msg, wall, view)
        asks: tuple[Command, ...] = ()
        node = self._nodes.get(node_id)
        if node is None:
            node = self._node(node_id, wall, view)
            if self.request_rebirth:
                asks = (rebirth_request(levels[1], levels[3], wall),)
        seq = None if raw_seq is None else self._unwrap(node, raw_seq)
        if kind == "NDATA":
            values = _values(msg, node.aliases.get(None, {}))
            return (*asks, Beat(node_id, session=node.session, seq=seq, ts=ts, metrics=values))
        device_id = make_device_id(self.id_prefix, levels[1], levels[3], levels[4])
        if device_id is None:
            return Malformed("bad_device_id", f"no device id from {topic!r}")
        if kind == "DBIRTH":
            session = f"{node.session}.{_ms(ts, wall)}"
            node.devices[device_id] = session
            return (
                *asks,
                Online(device_id, session=session),
                Beat(
                    device_id, session=session, seq=seq, ts=ts, metrics=_birth(node, device_id, msg)
                ),
            )
        session = node.devices.get(device_id) or self._learn_device(node, device_id, wall, view)
        if kind == "DDEATH":
            node.devices.pop(device_id, None)
            return (*asks, Offline(device_id, session=session))
        values = _values(msg, node.aliases.get(device_id, {}))
        return (*asks, Beat(device_id, session=session, seq=seq, ts=ts, metrics=values))

    # ---------------------------------------------------------------- node sessions

    def _nbirth(
        self, node_id: str, msg: Payload, raw_seq: int | None, ts: float | None, wall: float
    ) -> Decoded:
        bd_seq = _bd_seq(msg)
        if bd_seq is None:
            return Malformed("invalid_payload", "NBIRTH without a bdSeq metric")
        events: list[SourceEvent] = []
        old = self._nodes.get(node_id)
        if old is not None:
            # P2: a new node session without a death: the old one's devices are gone.
            events.extend(Offline(d, session=s) for d, s in old.devices.items())
        session = f"bd{bd_seq}-{_ms(ts, wall)}"
        node = _Node(session, bd_seq, epoch=int(wall * 1_000_000))
        self._nodes[node_id] = node
        seq = None if raw_seq is None else self._unwrap(node, raw_seq)
        events.append(Online(node_id, session=session))
        values = _birth(node, None, msg)
        events.append(Beat(node_id, session=session, seq=seq, ts=ts, metrics=values))
        return tuple(events)

    def _ndeath(self, node_id: str, msg: Payload, wall: float, view: SessionView) -> Decoded:
        bd_seq = _bd_seq(msg)
        if bd_seq is None:
            return Malformed("invalid_payload", "NDEATH without a bdSeq metric")
        node = self._nodes.get(node_id)
        if node is None:
            seen = view(node_id)
            current = seen[0] if seen is not None else None
            if current is None:
                # Never heard of: a death for a new session, so the engine tracks it.
                return (Offline(node_id, session=f"bd{bd_seq}-{_ms(None, wall)}"),)
            if current.startswith((f"bd{bd_seq}-", f"{_UNKNOWN_BD}-")):
                return (Offline(node_id, session=current),)
            return (Offline(node_id, session=f"bd{bd_seq}-stale"),)
        if node.bd_seq is not None and node.bd_seq != bd_seq:
            # P1: the will of an older connection, arriving after a newer birth.
            return (Offline(node_id, session=f"bd{bd_seq}-stale"),)
        del self._nodes[node_id]
        events: list[SourceEvent] = [Offline(node_id, session=node.session)]
        events.extend(Offline(d, session=s) for d, s in node.devices.items())
        return tuple(events)

    def _node(self, node_id: str, wall: float, view: SessionView) -> _Node:
        node = self._nodes.get(node_id)
        if node is not None:
            return node
        # P5: DATA before any birth this run.
        seen = view(node_id)
        session: str | None = None
        bd_seq: int | None = None
        if seen is not None and seen[0] is not None and not seen[1]:
            session = seen[0]
            head = session.split("-", 1)[0]
            if head.startswith("bd") and head[2:].isdigit():
                bd_seq = int(head[2:])
        if session is None:
            session = f"{_UNKNOWN_BD}-{_ms(None, wall)}"
        node = _Node(session, bd_seq, epoch=int(wall * 1_000_000))
        self._nodes[node_id] = node
        return node

    def _learn_device(self, node: _Node, device_id: str, wall: float, view: SessionView) -> str:
        seen = view(device_id)
        if (
            seen is not None
            and seen[0] is not None
            and not seen[1]
            and seen[0].startswith(node.session + ".")
        ):
            session = seen[0]
        else:
            session = f"{node.session}.{_ms(None, wall)}"
        node.devices[device_id] = session
        return session

    @staticmethod
    def _unwrap(node: _Node, raw: int) -> int:
        """P4: the node-wide seq as an ever-growing number within the session."""
        if node.last_raw is None:
            node.last_raw = raw
            return node.epoch + node.count
        step = (raw - node.last_raw) % 256
        if step == 0 or step > 128:
            # The same message again, or an older one: not above what was seen.
            return node.epoch + node.count - (256 - step) % 256
        node.count += step
        node.last_raw = raw
        return node.epoch + node.count


_MAX_METRICS: Final = 100
_MAX_TEXT: Final = 256
_SCALARS: Final = frozenset(
    {"int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value"}
)


def _birth(node: _Node, key: str | None, msg: Payload) -> dict[str, Any] | None:
    """A birth's metric values; remembers its aliases for the DATA that follows."""
    node.aliases[key] = {m.alias: m.name for m in msg.metrics if m.HasField("alias") and m.name}
    return _values(msg, node.aliases[key])


def _values(msg: Payload, aliases: dict[int, str]) -> dict[str, Any] | None:
    """Scalar metric values by name, as the device's latest metrics (None if none).

    Bounded like protocol v1's metrics: at most 100, texts cut to 256 characters;
    datasets, templates, bytes and non-finite numbers are left out.
    """
    values: dict[str, Any] = {}
    for metric in msg.metrics:
        name = metric.name or aliases.get(metric.alias)
        kind = metric.WhichOneof("value")
        if not name or kind not in _SCALARS or metric.is_null:
            continue
        value = getattr(metric, kind)
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if isinstance(value, str):
            value = value[:_MAX_TEXT]
        values[name[:_MAX_TEXT]] = value
        if len(values) >= _MAX_METRICS:
            break
    return values or None


def state_topic(host_id: str) -> str:
    """The retained STATE topic of a Sparkplug primary host application."""
    return f"{NAMESPACE}/STATE/{host_id}"


def rebirth_request(group: str, edge_node: str, wall: float) -> Command:
    """NCMD ``Node Control/Rebirth = true``: the node publishes its births again."""
    msg = Payload(timestamp=_ms(None, wall))
    msg.metrics.add(name="Node Control/Rebirth", datatype=_BOOLEAN, boolean_value=True)
    return Command(f"{NAMESPACE}/{group}/NCMD/{edge_node}", msg.SerializeToString())


def _ms(ts: float | None, wall: float) -> int:
    return round((ts if ts is not None else wall) * 1000)

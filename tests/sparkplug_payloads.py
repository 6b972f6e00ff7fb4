"""Sparkplug B payloads as an edge node encodes them (spec 3.0, chapter 6), for tests."""

from __future__ import annotations

from monitor.sources.sparkplug_b_pb2 import Payload

UINT64 = 8
DOUBLE = 10
BOOLEAN = 11


def _payload(timestamp_ms: int, seq: int | None) -> Payload:
    msg = Payload(timestamp=timestamp_ms)
    if seq is not None:
        msg.seq = seq
    return msg


def nbirth(bd_seq: int, *, ts_ms: int, seq: int = 0) -> bytes:
    msg = _payload(ts_ms, seq)
    msg.metrics.add(name="bdSeq", datatype=UINT64, long_value=bd_seq, timestamp=ts_ms)
    msg.metrics.add(name="Node Control/Rebirth", datatype=BOOLEAN, boolean_value=False)
    msg.metrics.add(name="temperature", alias=1, datatype=DOUBLE, double_value=21.5)
    return msg.SerializeToString()


def ndeath(bd_seq: int, *, ts_ms: int) -> bytes:
    """The will an edge node registers when it connects (no seq, by the spec)."""
    msg = Payload(timestamp=ts_ms)
    msg.metrics.add(name="bdSeq", datatype=UINT64, long_value=bd_seq)
    return msg.SerializeToString()


def data(seq: int, *, ts_ms: int, value: float = 22.0) -> bytes:
    """NDATA or DDATA: metrics by alias, as after a birth."""
    msg = _payload(ts_ms, seq)
    msg.metrics.add(alias=1, datatype=DOUBLE, double_value=value, timestamp=ts_ms)
    return msg.SerializeToString()


def dbirth(seq: int, *, ts_ms: int) -> bytes:
    msg = _payload(ts_ms, seq)
    msg.metrics.add(name="pressure", alias=1, datatype=DOUBLE, double_value=1.2)
    return msg.SerializeToString()


def ddeath(seq: int, *, ts_ms: int) -> bytes:
    return _payload(ts_ms, seq).SerializeToString()

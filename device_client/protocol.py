"""Protocol v1: topics and payloads shared by devices and the monitor.

This module is the contract described in ``docs/protocol.md``. It is pure: no MQTT
library, no I/O, no clock. Devices in other languages follow the same rules; the
monitor imports this module to validate what it receives, and the SDK imports it to
build what it sends, so the two can never disagree.

Rules stated once:

* Device ids are 1-64 characters of ``[A-Za-z0-9._-]``. Anything else (``+``, ``#``,
  ``/``, spaces, empty, too long) is refused everywhere with :class:`InvalidDeviceId`:
  such ids would break topic filters or ACL patterns.
* Sessions follow the same character rule; a device makes a new one for every connection.
* Payloads are UTF-8 JSON objects of at most :data:`MAX_PAYLOAD_BYTES` bytes.
* A presence or will naming a session other than the device's current one is stale.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final

import msgspec
import orjson

PROTOCOL_VERSION: Final = 1
DEFAULT_TOPIC_ROOT: Final = "clawbeat/v1"
MAX_PAYLOAD_BYTES: Final = 4096
# How deep ``metrics`` may nest (the object itself is level 1). A fixed limit, rather
# than whatever a JSON library's recursion allows, so every payload the monitor accepts
# can also be stored and shown.
MAX_METRICS_DEPTH: Final = 32
MIN_INTERVAL: Final = 0.1
MAX_INTERVAL: Final = 86_400.0
MAX_SEQ: Final = 2**63 - 1
# Devices connect with a keepalive of at most this many seconds, so that the broker
# publishes the will of a silently lost connection promptly (1.5 x keepalive).
MAX_KEEPALIVE: Final = 300

_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ROOT_RE: Final = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


class ProtocolError(ValueError):
    """Base class for everything this module refuses."""


class InvalidDeviceId(ProtocolError):
    """A device id (or session id) that breaks the id rule."""

    def __init__(self, value: object, *, what: str = "device id") -> None:
        self.value = value
        self.what = what
        super().__init__(
            f"invalid {what} {value!r}: use 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )


class InvalidPayload(ProtocolError):
    """A payload that is not valid for its topic; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message if field is None else f"{field}: {message}")


class PayloadTooLarge(InvalidPayload):
    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES} bytes")


class InvalidTopic(ProtocolError):
    """A topic outside the protocol's topic tree."""


def is_valid_device_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def validate_device_id(value: object) -> str:
    """Return ``value`` if it is a valid device id, else raise :class:`InvalidDeviceId`."""
    if not is_valid_device_id(value):
        raise InvalidDeviceId(value)
    assert isinstance(value, str)
    return value


def validate_session(value: object) -> str:
    if not is_valid_device_id(value):
        raise InvalidDeviceId(value, what="session")
    assert isinstance(value, str)
    return value


def validate_topic_root(value: str) -> str:
    if not _ROOT_RE.fullmatch(value):
        raise InvalidTopic(f"invalid topic root {value!r}: use path segments of [A-Za-z0-9._-]")
    return value


def validate_interval(value: object, *, field: str = "interval") -> float:
    # bool is an int subclass; "interval": true is a type error, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPayload("must be a number of seconds", field=field)
    interval = float(value)
    if not math.isfinite(interval) or not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise InvalidPayload(
            f"must be between {MIN_INTERVAL} and {MAX_INTERVAL:g} seconds", field=field
        )
    return interval


def new_session() -> str:
    """A fresh session id: 16 hex characters, unique per connection."""
    return secrets.token_hex(8)


class MessageKind(StrEnum):
    HEARTBEAT = "heartbeat"
    PRESENCE = "presence"
    CONFIG = "config"


class PresenceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class OfflineReason(StrEnum):
    CONNECTION_LOST = "connection-lost"
    SHUTDOWN = "shutdown"


# A dict lookup, not MessageKind(kind): this runs for every message the monitor gets.
_KINDS: Final = {kind.value: kind for kind in MessageKind}


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under one root (``clawbeat/v1`` unless configured otherwise)."""

    root: str = DEFAULT_TOPIC_ROOT

    def __post_init__(self) -> None:
        validate_topic_root(self.root)

    def heartbeat(self, device_id: str) -> str:
        return f"{self.root}/devices/{validate_device_id(device_id)}/heartbeat"

    def presence(self, device_id: str) -> str:
        return f"{self.root}/devices/{validate_device_id(device_id)}/presence"

    def config(self, device_id: str) -> str:
        return f"{self.root}/devices/{validate_device_id(device_id)}/config"

    def status(self, device_id: str) -> str:
        return f"{self.root}/status/{validate_device_id(device_id)}"

    @property
    def fleet_summary(self) -> str:
        return f"{self.root}/fleet/summary"

    @property
    def monitor_presence(self) -> str:
        return f"{self.root}/monitor/presence"

    def replica_presence(self, replica: str) -> str:
        """A cluster replica's own presence (each replica of a cluster has one)."""
        return f"{self.root}/monitor/replicas/{validate_device_id(replica)}/presence"

    @property
    def alerts(self) -> str:
        return f"{self.root}/alerts"

    @property
    def heartbeat_filter(self) -> str:
        return f"{self.root}/devices/+/heartbeat"

    @property
    def presence_filter(self) -> str:
        return f"{self.root}/devices/+/presence"

    @property
    def config_filter(self) -> str:
        return f"{self.root}/devices/+/config"

    @property
    def status_filter(self) -> str:
        return f"{self.root}/status/+"

    def parse_device_topic(self, topic: str) -> tuple[str, MessageKind]:
        """Split ``{root}/devices/{id}/{kind}`` into ``(id, kind)``.

        Raises :class:`InvalidTopic` for topics outside the device tree and
        :class:`InvalidDeviceId` for a hostile id segment.
        """
        prefix = f"{self.root}/devices/"
        if not topic.startswith(prefix):
            raise InvalidTopic(f"topic {topic!r} is not under {prefix!r}")
        rest = topic[len(prefix) :].split("/")
        if len(rest) != 2:
            raise InvalidTopic(f"topic {topic!r} is not {prefix}{{id}}/{{kind}}")
        device_id, kind = rest
        validate_device_id(device_id)
        message_kind = _KINDS.get(kind)
        if message_kind is None:
            raise InvalidTopic(f"unknown message kind {kind!r} in {topic!r}")
        return device_id, message_kind


# What msgspec checks in C while decoding a heartbeat (see ``decode_heartbeat``). The
# constraints are only applied by the decoder: constructing a Heartbeat checks nothing.
_Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}\Z")]
_Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
_Interval = Annotated[float, msgspec.Meta(ge=MIN_INTERVAL, le=MAX_INTERVAL)]
_Uptime = Annotated[float, msgspec.Meta(ge=0)]
_Firmware = Annotated[str, msgspec.Meta(max_length=64)]


# A msgspec Struct, so the decoder builds it directly (no dict, no dataclass __init__);
# gc=False: it holds no reference back to itself, so the cyclic collector need not track
# the one made per message.
class Heartbeat(msgspec.Struct, frozen=True, gc=False):
    seq: _Seq
    session: _Id
    interval: _Interval
    ts: float | None = None
    uptime: _Uptime | None = None
    fw: _Firmware | None = None
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Presence:
    state: PresenceState
    session: str
    reason: OfflineReason | None = None


@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    interval: float


class _PresenceWire(msgspec.Struct, frozen=True, gc=False):
    """A presence as msgspec decodes it; an absent reason is UNSET, a null one refused."""

    state: PresenceState
    session: _Id
    reason: OfflineReason | msgspec.UnsetType = msgspec.UNSET


_HEARTBEAT_DECODER: Final = msgspec.json.Decoder(Heartbeat)
_PRESENCE_DECODER: Final = msgspec.json.Decoder(_PresenceWire)
# The typed decoders refuse what the checked path below may still accept (NaN, lone
# surrogate escapes, "metrics": null, a reason on an online presence) or refuses with a
# better message; anything they refuse goes that way, so both paths accept the same
# payloads and every refusal names its field as before.
_FAST_REFUSALS: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
# A run of 19 digits may be an integer beyond 64 bits, which orjson (the checked path)
# turns into a float and msgspec would keep whole: such payloads take the checked path.
# Found by mapping every digit to "0" and everything else to " " (bytes.translate and a
# substring search run in C; a regex search costs several times more).
_DIGITS_ONLY: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN: Final = b"0" * 19
_OPENERS: Final = (ord("{"), ord("["))


def _sized(payload: bytes | bytearray | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else bytes(payload)
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(len(raw))
    return raw


def _shallow(raw: bytes) -> bool:
    """Whether ``raw`` has too few brackets for anything in it to nest past the limit.

    Counting bytes runs in C. The envelope is one level, so with at most
    ``MAX_METRICS_DEPTH`` more openers ``metrics`` cannot nest too deep, whatever they
    are; brackets inside strings only over-count. Payloads with more take the checked
    path, which walks them (and refuses what nests too deep anywhere, as before).
    """
    return raw.count(_OPENERS[0]) + raw.count(_OPENERS[1]) <= MAX_METRICS_DEPTH + 1


def _load_object(payload: bytes | bytearray | str) -> dict[str, Any]:
    raw = _sized(payload)
    try:
        # orjson first: decoding is on the monitor's per-message path and orjson takes
        # a few times less CPU than json.
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Then the standard library, which is more lenient: it accepts NaN and Infinity,
        # which some device JSON libraries write for a failed sensor reading. A strange
        # metric must not make a device look dead (its heartbeat would be dropped).
        obj = _load_leniently(raw)
    if not isinstance(obj, dict):
        raise InvalidPayload("must be a JSON object")
    return obj


def _load_leniently(raw: bytes) -> Any:
    try:
        # json also accepts escaped lone surrogates ("\ud800"), which no database
        # driver will encode: they become U+FFFD.
        return _without_surrogates(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPayload(f"not UTF-8 JSON ({exc})") from exc
    except RecursionError as exc:
        # A few KiB of '[' nest deeper than the decoder recurses; left uncaught, one
        # hostile (retained!) message would crash the monitor on every start.
        raise InvalidPayload("JSON nested too deeply") from exc


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Through UTF-16 a valid pair stays one character; a lone half becomes U+FFFD.
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    return value


def _nesting_within(value: dict[str, Any], limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` levels (iteratively: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return True


def _dump(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(len(data))
    return data


def _optional_number(obj: dict[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPayload("must be a number", field=name)
    if not math.isfinite(float(value)):
        raise InvalidPayload("must be finite", field=name)
    return float(value)


def decode_heartbeat(payload: bytes | bytearray | str) -> Heartbeat:
    raw = _sized(payload)
    if _shallow(raw) and _LONG_DIGIT_RUN not in raw.translate(_DIGITS_ONLY):
        try:
            return _HEARTBEAT_DECODER.decode(raw)
        except _FAST_REFUSALS:
            pass
    return _decode_heartbeat_checked(raw)


def _decode_heartbeat_checked(raw: bytes) -> Heartbeat:
    """Decode-then-check: the exact rule and message for every refusal."""
    obj = _load_object(raw)
    seq = obj.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise InvalidPayload("must be a non-negative integer", field="seq")
    session = validate_session(obj.get("session"))
    if "interval" not in obj:
        raise InvalidPayload("is required", field="interval")
    interval = validate_interval(obj["interval"])
    uptime = _optional_number(obj, "uptime")
    if uptime is not None and uptime < 0:
        raise InvalidPayload("must not be negative", field="uptime")
    fw = obj.get("fw")
    if fw is not None and (not isinstance(fw, str) or len(fw) > 64):
        raise InvalidPayload("must be a string of at most 64 characters", field="fw")
    metrics = obj.get("metrics", {})
    if metrics is None:
        metrics = {}
    if not isinstance(metrics, dict):
        raise InvalidPayload("must be a JSON object", field="metrics")
    if not _nesting_within(metrics, MAX_METRICS_DEPTH):
        raise InvalidPayload(
            f"must not nest deeper than {MAX_METRICS_DEPTH} levels", field="metrics"
        )
    return Heartbeat(
        seq=seq,
        session=session,
        interval=interval,
        ts=_optional_number(obj, "ts"),
        uptime=uptime,
        fw=fw,
        metrics=metrics,
    )


def encode_heartbeat(hb: Heartbeat) -> bytes:
    obj: dict[str, Any] = {"seq": hb.seq, "session": hb.session, "interval": hb.interval}
    if hb.ts is not None:
        obj["ts"] = round(hb.ts, 3)
    if hb.uptime is not None:
        obj["uptime"] = round(hb.uptime, 3)
    if hb.fw is not None:
        obj["fw"] = hb.fw
    if hb.metrics:
        obj["metrics"] = hb.metrics
    return _dump(obj)


def decode_presence(payload: bytes | bytearray | str) -> Presence:
    raw = _sized(payload)
    if not _shallow(raw):
        return _decode_presence_checked(raw)
    try:
        wire = _PRESENCE_DECODER.decode(raw)
    except _FAST_REFUSALS:
        return _decode_presence_checked(raw)
    if wire.state is PresenceState.ONLINE:
        return Presence(PresenceState.ONLINE, wire.session)
    reason = OfflineReason.CONNECTION_LOST if wire.reason is msgspec.UNSET else wire.reason
    return Presence(PresenceState.OFFLINE, wire.session, reason)


def _decode_presence_checked(raw: bytes) -> Presence:
    obj = _load_object(raw)
    try:
        state = PresenceState(str(obj.get("state")))
    except ValueError:
        raise InvalidPayload("must be 'online' or 'offline'", field="state") from None
    session = validate_session(obj.get("session"))
    reason: OfflineReason | None = None
    if state is PresenceState.OFFLINE:
        raw_reason = obj.get("reason", OfflineReason.CONNECTION_LOST.value)
        try:
            reason = OfflineReason(raw_reason)
        except ValueError:
            raise InvalidPayload(
                "must be 'connection-lost' or 'shutdown'", field="reason"
            ) from None
    return Presence(state=state, session=session, reason=reason)


def encode_presence(presence: Presence) -> bytes:
    obj: dict[str, Any] = {"state": presence.state.value, "session": presence.session}
    if presence.state is PresenceState.OFFLINE:
        obj["reason"] = (presence.reason or OfflineReason.CONNECTION_LOST).value
    return _dump(obj)


def online(session: str) -> bytes:
    return encode_presence(Presence(PresenceState.ONLINE, session))


def will(session: str) -> bytes:
    """The last-will payload, set before connecting."""
    return encode_presence(Presence(PresenceState.OFFLINE, session, OfflineReason.CONNECTION_LOST))


def shutdown(session: str) -> bytes:
    return encode_presence(Presence(PresenceState.OFFLINE, session, OfflineReason.SHUTDOWN))


def decode_config(payload: bytes | bytearray | str) -> ConfigUpdate:
    obj = _load_object(payload)
    if "interval" not in obj:
        raise InvalidPayload("is required", field="interval")
    return ConfigUpdate(interval=validate_interval(obj["interval"]))


def encode_config(update: ConfigUpdate) -> bytes:
    return _dump({"interval": validate_interval(update.interval)})

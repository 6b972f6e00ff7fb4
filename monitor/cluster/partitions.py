"""Which partition a device belongs to: NATS's ``partition(P, token)``, exactly.

The fleet is split into ``P`` partitions (``CLAWBEAT_PARTITIONS``, default 64, fixed
for the life of a deployment: changing it moves almost every device). A device's
partition is

    fnv1a_32(token) mod P

where ``token`` is the device id as it appears as one token of a NATS subject, and
``fnv1a_32`` is the 32-bit FNV-1a hash (offset basis 2166136261, prime 16777619, each
byte XORed in before the multiply). This is the function nats-server applies in a
subject mapping such as ``{{partition(64,4)}}`` (``getHashPartition`` in
``server/subject_transform.go``: ``fnv.New32a`` over the token's bytes, ``Sum32() %
P``), so a broker can route a device's messages to the partition subject of the
replica that owns it, and the monitor, computing the same number, agrees with it.

The token: NATS's MQTT gateway turns topic levels into subject tokens (``/`` becomes
``.``). A device id is ``[A-Za-z0-9._-]``; every character but ``.`` passes
unchanged. nats-server 2.9 refuses MQTT topics containing ``.``; later versions write
a ``.`` in a topic level as ``//`` in the subject. We hash that spelling, so an id
with a dot lands where a broker that accepts it sends it, and ids without one (all
that 2.9 can carry) hash their own bytes.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

DEFAULT_PARTITIONS: Final = 64
# A subject mapping's partition count is an int in nats-server; beyond a few thousand
# the lease table, not the hash, is what costs, and 1024 leaves room for any fleet.
MAX_PARTITIONS: Final = 1024

_FNV32_OFFSET: Final = 0x811C9DC5
_FNV32_PRIME: Final = 0x01000193
_MASK32: Final = 0xFFFFFFFF


def fnv1a_32(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data`` (Go's ``hash/fnv.New32a``)."""
    value = _FNV32_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV32_PRIME) & _MASK32
    return value


def nats_token(device_id: str) -> str:
    """The device id as a token of the NATS subject its topics map to."""
    return device_id.replace(".", "//")


def check_partitions(count: int) -> int:
    """Return ``count`` if it is a usable number of partitions, else raise ValueError."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be a whole number from 1 to {MAX_PARTITIONS}")
    return count


def partition_of(device_id: str, partitions: int) -> int:
    """The partition (``0 <= p < partitions``) that ``device_id`` belongs to."""
    return fnv1a_32(nats_token(device_id).encode()) % check_partitions(partitions)


def nats_mapping(*, topic_root: str, partitions: int, kind: str) -> tuple[str, str]:
    """The NATS subject mapping ``(source, destination)`` for one kind of device topic.

    ``{root}/devices/{id}/{kind}`` (subject ``{root.}devices.{id}.{kind}``) goes to
    ``{root.}partitions.{p}.devices.{id}.{kind}``, where ``p`` is :func:`partition_of`
    computed by the broker. A subscriber to ``{root}/partitions/{p}/devices/+/{kind}``
    receives exactly one partition's devices.
    """
    check_partitions(partitions)
    if "." in topic_root:
        raise ValueError(f"topic root {topic_root!r}: a '.' cannot be mapped to a NATS subject")
    root = topic_root.replace("/", ".")
    # partition(P, 1) and wildcard(1) name the source's first (only) wildcard: the id.
    source = f"{root}.devices.*.{kind}"
    destination = (
        f"{root}.partitions.{{{{partition({partitions},1)}}}}.devices.{{{{wildcard(1)}}}}.{kind}"
    )
    return source, destination


def partition_spans(partitions: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2,5,7-8`` (empty for none): a list of 64 is unreadable."""
    out: list[str] = []
    run: list[int] = []
    for p in sorted(partitions):
        if run and p == run[-1] + 1:
            run.append(p)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [p]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def ids_in(partitions: Iterable[int], count: int, prefix: str, *, of: int) -> list[str]:
    """``count`` device ids ``{prefix}-{n}`` that fall in ``partitions`` (of ``of``): for
    tests and benchmarks that need devices of one replica's share."""
    wanted = set(partitions)
    found: list[str] = []
    n = 0
    while len(found) < count:
        candidate = f"{prefix}-{n}"
        if partition_of(candidate, of) in wanted:
            found.append(candidate)
        n += 1
    return found

"""The partition hash is NATS's ``partition(P, token)``: FNV-1a 32 of the token, mod P."""

from __future__ import annotations

import pytest

from monitor.cluster import partitions
from monitor.cluster.partitions import (
    DEFAULT_PARTITIONS,
    check_partitions,
    fnv1a_32,
    nats_mapping,
    nats_token,
    partition_of,
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # The FNV-1a 32-bit reference vectors (Go's hash/fnv tests, Noll's test suite).
        (b"", 0x811C9DC5),
        (b"a", 0xE40C292C),
        (b"ab", 0x4D2505CA),
        (b"abc", 0x1A47E90B),
        (b"foobar", 0xBF9CF968),
    ],
)
def test_fnv1a_32_matches_the_reference_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_32(data) == expected


@pytest.mark.parametrize(
    ("device_id", "partitions", "expected"),
    [
        # nats-server v2.9.10 put these on clawbeat.v1.partitions.<p> with
        # {{partition(64,1)}} (tests/integration/test_cluster_nats_partition.py checks
        # the live server); the rest are the reference hashes above mod P.
        ("a", 64, 0xE40C292C % 64),
        ("a", 64, 44),
        ("foobar", 64, 40),
        ("abc", 7, 0x1A47E90B % 7),
        ("foobar", 1, 0),
    ],
)
def test_partition_of_known_values(device_id: str, partitions: int, expected: int) -> None:
    assert partition_of(device_id, partitions) == expected


def test_a_dot_is_hashed_as_nats_spells_it_in_a_subject_token() -> None:
    assert nats_token("plug.kitchen") == "plug//kitchen"
    assert partition_of("plug.kitchen", 64) == fnv1a_32(b"plug//kitchen") % 64
    assert partition_of("plug-kitchen", 64) == fnv1a_32(b"plug-kitchen") % 64


def test_partitions_spread_a_fleet_evenly() -> None:
    counts = [0] * DEFAULT_PARTITIONS
    for n in range(64_000):
        counts[partition_of(f"sensor-{n:05d}", DEFAULT_PARTITIONS)] += 1
    # 1000 expected per partition; FNV-1a over sequential ids stays well within 15 %.
    assert min(counts) > 850
    assert max(counts) < 1150


@pytest.mark.parametrize("bad", [0, -1, 1025, True, 2.0])
def test_bad_partition_counts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="partitions must be a whole number from 1 to 1024"):
        check_partitions(bad)  # type: ignore[arg-type]


def test_nats_mapping_names_the_id_wildcard() -> None:
    assert nats_mapping(topic_root="clawbeat/v1", partitions=64, kind="heartbeat") == (
        "clawbeat.v1.devices.*.heartbeat",
        "clawbeat.v1.partitions.{{partition(64,1)}}.devices.{{wildcard(1)}}.heartbeat",
    )
    with pytest.raises(ValueError, match="cannot be mapped"):
        nats_mapping(topic_root="site.a/v1", partitions=64, kind="heartbeat")


def test_partition_spans_read_as_ranges() -> None:
    assert partitions.partition_spans([8, 0, 1, 2, 5, 7]) == "0-2,5,7-8"
    assert partitions.partition_spans([]) == ""

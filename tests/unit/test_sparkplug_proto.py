"""The checked-in Sparkplug module is what protoc makes of the checked-in .proto."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.sources.sparkplug_b_pb2 import Payload

SOURCES = Path(__file__).resolve().parents[2] / "monitor" / "sources"


def test_generated_module_matches_the_proto(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    code = protoc.main(
        [
            "protoc",
            f"-I{SOURCES}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(SOURCES / "sparkplug_b.proto"),
        ]
    )
    assert code == 0
    for name in ("sparkplug_b_pb2.py", "sparkplug_b_pb2.pyi"):
        assert (tmp_path / name).read_text() == (SOURCES / name).read_text(), (
            f"{name} is out of date: run scripts/gen_sparkplug.sh"
        )


def test_wire_format_follows_the_specification() -> None:
    # Field numbers from the specification's appendix: timestamp 1, metrics 2, seq 3;
    # metric name 1, alias 2, timestamp 3, datatype 4, long_value 11. Hand-encoded bytes
    # catch a renumbered field that a round trip through the same schema would not.
    wire = bytes.fromhex(
        "08e807"  # timestamp = 1000
        "120b"  # metrics[0], 11 bytes:
        "0a056264536571"  # name = "bdSeq"
        "2008"  # datatype = 8 (UInt64)
        "5803"  # long_value = 3
        "1805"  # seq = 5
    )
    msg = Payload.FromString(wire)
    assert msg.timestamp == 1000
    assert msg.seq == 5
    assert msg.metrics[0].name == "bdSeq"
    assert msg.metrics[0].datatype == 8
    assert msg.metrics[0].long_value == 3

#!/usr/bin/env bash
# Regenerate monitor/sources/sparkplug_b_pb2.py (+ .pyi) from sparkplug_b.proto with the
# protoc bundled in grpcio-tools (a dev dependency; the monitor needs only protobuf).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -Imonitor/sources --python_out=monitor/sources \
    --pyi_out=monitor/sources monitor/sources/sparkplug_b.proto

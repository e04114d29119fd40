#!/bin/sh
# Regenerates the Python stubs from proto/ (the single source of truth).
# Output: clients/python/audiodream_proto/v1/, the contract package that the
# client and the server both import (and nothing else of each other).
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${1:-clients/python/audiodream_proto/v1}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m grpc_tools.protoc -I proto \
    --python_out="$TMP" --pyi_out="$TMP" --grpc_python_out="$TMP" \
    proto/audiodream/v1/audiodream.proto
mkdir -p "$OUT"
cp "$TMP"/audiodream/v1/audiodream_pb2.py "$TMP"/audiodream/v1/audiodream_pb2.pyi "$OUT/"
# protoc names the sibling module by the .proto's path (audiodream.v1); the
# stubs live in audiodream_proto.v1, so the service module imports it relatively.
sed 's/^from audiodream\.v1 import audiodream_pb2 as/from . import audiodream_pb2 as/' \
    "$TMP"/audiodream/v1/audiodream_pb2_grpc.py > "$OUT/audiodream_pb2_grpc.py"
printf '"""Generated from proto/audiodream/v1/audiodream.proto; do not edit."""\n' \
    > "$OUT/__init__.py"

#!/bin/sh
# Regenerates the Python stubs from proto/ (the single source of truth).
# Output: clients/python/audiodream/v1/*_pb2*.py, shared by client and server.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${1:-clients/python}"
"$PY" -m grpc_tools.protoc -I proto \
    --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
    proto/audiodream/v1/audiodream.proto
printf '"""Generated from proto/audiodream/v1/audiodream.proto; do not edit."""\n' \
    > "$OUT/audiodream/v1/__init__.py"

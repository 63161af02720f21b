#!/usr/bin/env bash
# Generates the sidecar's Python stubs from protos/ with the protoc bundled in grpcio-tools.
# With --check, regenerates into a temporary folder and fails when the committed stubs differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out=sidecar/_proto
check=0
# The project's venv (made by `make`), so the script works as written without `uv run` or an activated venv.
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python
if [ "${1:-}" = "--check" ]; then
  check=1
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT # one temporary folder per run, removed whatever the outcome
fi
mkdir -p "$out"
"$python" -m grpc_tools.protoc -Iprotos --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  segment/sidecar/v1/sidecar.proto
# protoc writes stubs under segment/sidecar/v1/ and imports them as a top-level `segment` package, a namespace
# segment-analytics-python owns; flatten them into sidecar._proto with package-relative imports instead.
mv "$out/segment/sidecar/v1/"* "$out/"
rm -rf "$out/segment"
sed -i 's/^from segment\.sidecar\.v1 import sidecar_pb2/from sidecar._proto import sidecar_pb2/' "$out/sidecar_pb2_grpc.py"
[ -f "$out/__init__.py" ] || echo '"""Stubs generated from protos/ by scripts/gen_protos.sh; do not edit."""' > "$out/__init__.py"
if [ $check = 1 ]; then
  if diff -r sidecar/_proto "$out" -x __pycache__ >/dev/null; then echo "python stubs up to date"; else
    diff -r sidecar/_proto "$out" -x __pycache__ | head -20; echo "python stubs are stale: run scripts/gen_protos.sh" >&2; exit 1; fi
fi

#!/bin/sh
# Builds the sidecar's runtime virtualenv from the lock file: only runtime dependencies, pinned and hash-checked.
#
# The Dockerfile's build stage runs this script; tests/unit/test_dockerfile.py runs the same script in a clean
# virtualenv (no Docker engine needed), then starts the result and checks `segment-sidecar healthcheck`.
#
# usage: install.sh SOURCE_DIR VENV_DIR      (needs `uv` on PATH; PYTHON picks the interpreter, default python3)
set -eu
src=${1:?source directory (pyproject.toml, uv.lock, sidecar/)}
venv=${2:?virtualenv to create}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runtime dependencies exactly as locked (no dev group, hashes included), then the sidecar itself without deps.
uv export --project "$src" --frozen --no-dev --no-emit-project --format requirements-txt --output-file "$work/requirements.txt" >/dev/null
"$python" -m venv --without-pip "$venv"
# --compile-bytecode: the image sets PYTHONDONTWRITEBYTECODE, so modules without a .pyc would be compiled from
# source at every start of the container (0.7 s of CPU, more than half the sidecar's start-up, on a 2-core machine).
uv pip install --python "$venv/bin/python" --compile-bytecode --require-hashes --only-binary :all: -r "$work/requirements.txt"
uv build --project "$src" --wheel --out-dir "$work/dist" >/dev/null
uv pip install --python "$venv/bin/python" --compile-bytecode --no-deps "$work"/dist/*.whl
# The generated gRPC stubs ship inside the package (sidecar/_proto): check they import before anything runs.
"$venv/bin/python" -c "import sidecar._proto.sidecar_pb2_grpc, sidecar.app"

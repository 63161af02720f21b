#!/usr/bin/env bash
# Generates every client's stubs from protos/, with the protoc bundled in grpcio-tools and each language's local
# plugin (no buf remote plugins: they need the network):
#   Python  clients/python/src/segment_sidecar_client/_proto/   grpcio-tools (committed)
#   Node    clients/node/src/gen/                              ts-proto from clients/node/node_modules (committed)
#   Go      clients/go/gen/segment/sidecar/v1/                 protoc-gen-go + protoc-gen-go-grpc (committed)
#   Java    not here: Maven's protobuf plugin generates it at build time from protos/.
# The sidecar's own stubs (sidecar/_proto) are scripts/gen_protos.sh's.
#
# Usage: scripts/gen_clients.sh [--check]
#   --check  regenerate into a temporary folder and fail, showing the difference, when a committed stub has drifted.
# Needs: a Python with grpcio-tools (the root venv: `uv sync`), `npm ci` in clients/node, and Go (the two Go plugins
# are `go install`ed at pinned versions into tools/go-bin on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTO=segment/sidecar/v1/sidecar.proto

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

die() { echo "gen_clients: $*" >&2; exit 1; }

# A Python that has grpcio-tools: the active one, else the root venv's, else uv's.
if python -c 'import grpc_tools' 2>/dev/null; then python=(python)
elif [ -x .venv/bin/python ] && .venv/bin/python -c 'import grpc_tools' 2>/dev/null; then python=(.venv/bin/python)
elif command -v uv >/dev/null; then python=(uv run --quiet python)
else die "no Python with grpcio-tools: run 'uv sync' at the repository root"; fi
protoc() { "${python[@]}" -m grpc_tools.protoc "$@"; }

ts_proto=clients/node/node_modules/.bin/protoc-gen-ts_proto
[ -x "$ts_proto" ] || die "ts-proto is missing: run 'npm ci' in clients/node"

command -v go >/dev/null || die "Go is missing: install Go 1.22 or newer to generate the Go stubs"
gobin=$root/tools/go-bin
want_go="protoc-gen-go ${PROTOC_GEN_GO_VERSION}"
want_grpc="protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION#v}"
if [ "$("$gobin/protoc-gen-go" --version 2>/dev/null)" != "$want_go" ]; then
  GOBIN=$gobin go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
fi
if [ "$("$gobin/protoc-gen-go-grpc" --version 2>/dev/null)" != "$want_grpc" ]; then
  GOBIN=$gobin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"
fi

if [ $check = 1 ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; else out=$root; fi
py_out=$out/clients/python/src/segment_sidecar_client/_proto
node_out=$out/clients/node/src/gen
go_out=$out/clients/go/gen
for dir in "$py_out" "$node_out" "$go_out/segment/sidecar/v1"; do
  # Regenerate from scratch so a message or file removed from protos/ does not linger; hand-written files are
  # never kept in these folders.
  rm -rf "$dir" && mkdir -p "$dir"
done

# --- Python: flatten segment/sidecar/v1/* into the package's _proto with a relative import, so the client never
# claims the top-level `segment` namespace (segment-analytics-python owns it).
protoc -Iprotos --python_out="$py_out" --pyi_out="$py_out" --grpc_python_out="$py_out" "$PROTO"
mv "$py_out/segment/sidecar/v1/"* "$py_out/"
rm -rf "$py_out/segment"
sed -i 's/^from segment\.sidecar\.v1 import sidecar_pb2/from . import sidecar_pb2/' "$py_out/sidecar_pb2_grpc.py"
echo '"""Stubs generated from protos/ by scripts/gen_clients.sh; do not edit."""' > "$py_out/__init__.py"

# --- Node: TypeScript messages and a grpc-js client from ts-proto; google.rpc.Status and error details come from the
# copies in clients/node/proto (protos/ itself imports only google/protobuf).
protoc -Iprotos -Iclients/node/proto --plugin=protoc-gen-ts_proto="$ts_proto" --ts_proto_out="$node_out" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,env=node,useOptionals=messages \
  "$PROTO" google/rpc/status.proto google/rpc/error_details.proto

# --- Go: messages and the gRPC client, at the path the proto's go_package names inside the clients/go module.
PATH=$gobin:$PATH protoc -Iprotos --go_out="$go_out" --go_opt=paths=source_relative \
  --go-grpc_out="$go_out" --go-grpc_opt=paths=source_relative "$PROTO"

if [ $check = 1 ]; then
  status=0
  for dir in clients/python/src/segment_sidecar_client/_proto clients/node/src/gen clients/go/gen/segment/sidecar/v1; do
    if ! diff -r -x __pycache__ "$root/$dir" "$out/$dir" >"$out/diff.txt" 2>&1; then
      head -40 "$out/diff.txt" >&2
      echo "gen_clients: $dir is stale: run scripts/gen_clients.sh and commit the result" >&2
      status=1
    fi
  done
  [ $status = 0 ] && echo "client stubs up to date (python, node, go)"
  exit $status
fi
echo "generated client stubs: python, node, go"

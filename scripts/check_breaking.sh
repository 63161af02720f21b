#!/usr/bin/env bash
# Fails when protos/ breaks wire or generated-code compatibility with the previous commit (or the last release tag).
# The v1 package never breaks: new fields and RPCs only.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=tools/node_modules/.bin/buf
against=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)
if [ -z "$against" ]; then
  if ! git rev-parse -q --verify HEAD~1 >/dev/null; then echo "buf breaking: no previous commit to compare with"; exit 0; fi
  against=HEAD~1
fi
if ! git ls-tree -r --name-only "$against" -- protos/segment/sidecar/v1/sidecar.proto | grep -q .; then
  echo "buf breaking: $against has no protos yet"; exit 0
fi
$buf breaking protos --against ".git#ref=$(git rev-parse "$against"),subdir=protos"
echo "buf breaking: no breaking change against $against"

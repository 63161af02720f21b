#!/usr/bin/env bash
# Runs every client's own tests in its own runner, plus the stub drift check. With CI=true (or
# TEST_REQUIRE_CLIENTS=1) a missing toolchain fails the run; on a developer's machine it is skipped, saying so.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
required=${TEST_REQUIRE_CLIENTS:-${CI:-}}
export SIDECAR_PYTHON="$root/.venv/bin/python"
failed=()

need() {  # need TOOL LANGUAGE: 0 when the tool exists; otherwise fail (CI) or skip (developer machine)
  if command -v "$1" >/dev/null 2>&1; then return 0; fi
  if [ -n "$required" ]; then echo "FAIL: $2 client tests need '$1', which is not installed" >&2; failed+=("$2"); return 1; fi
  echo "SKIP: $2 client tests: '$1' is not installed on this machine"; return 1
}

run() {  # run NAME COMMAND: run a step in its own TMPDIR, remember a failure, leftovers and known noise included
  local name=$1 tmp log leftovers
  tmp=$(mktemp -d)
  log=$(mktemp)
  echo "== $name"
  if ! (set -e; export TMPDIR="$tmp"; eval "$2") 2>&1 | tee "$log"; then failed+=("$name"); fi
  # Tests clean up after themselves: nothing may be left in the temp folder (a user's /tmp would fill up), but
  # pytest's own pytest-of-<user> folder, which pytest prunes to its last three runs by design.
  leftovers=$(ls -A "$tmp" | grep -v '^pytest-of-' || true)
  if [ -n "$leftovers" ]; then
    echo "FAIL: $name left files in its temp folder: $(echo "$leftovers" | head -5 | tr '\n' ' ')" >&2
    failed+=("$name (temp files left)")
  fi
  # netty warns per connection when given a socket option a unix socket lacks (SO_KEEPALIVE); the Java client clears it.
  if grep -q "Unknown channel option" "$log"; then
    echo "FAIL: $name: netty warned 'Unknown channel option'" >&2
    failed+=("$name (netty warnings)")
  fi
  rm -rf "$tmp" "$log"
}

run "python client" "cd clients/python && $root/.venv/bin/python -m pytest -q tests"
if need npm node; then
  run "node client" "cd clients/node && npm ci --no-audit --no-fund --silent && npm test"
fi
if need go go && need npm 'stub generation'; then
  run "client stubs up to date" "scripts/gen_clients.sh --check"
fi
if need go go; then
  run "go client" "cd clients/go && test -z \"\$(gofmt -l .)\" && go vet ./... && go test ./..."
fi
if need mvn java; then
  run "java client" "cd clients/java && mvn -B -ntp test"
fi

if [ ${#failed[@]} -gt 0 ]; then echo "client checks failed: ${failed[*]}" >&2; exit 1; fi
echo "client checks passed"

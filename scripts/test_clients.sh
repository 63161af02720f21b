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

run() {  # run NAME COMMAND...: run a step, remember a failure
  echo "== $1"
  if ! (set -e; eval "$2"); then failed+=("$1"); fi
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

#!/usr/bin/env bash
# Every check `make test` runs, in order; each runs even when an earlier one failed, and the summary names the
# failures, so one run shows everything that needs fixing.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
step() {  # step NAME COMMAND...
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then failed+=("$name"); fi
}
step "ruff check" .venv/bin/ruff check .
step "ruff format" .venv/bin/ruff format --check .
step "mypy (strict)" .venv/bin/mypy
step "buf lint" bash -c "cd protos && ../tools/node_modules/.bin/buf lint"
step "buf breaking" scripts/check_breaking.sh
step "python stubs up to date" scripts/gen_protos.sh --check
step "python sync client up to date" .venv/bin/python scripts/gen_sync_client.py --check
step "pytest" .venv/bin/pytest -q
step "clients" scripts/test_clients.sh
step "documented commands" .venv/bin/python scripts/check_documented_commands.py
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all checks passed"

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
# pytest in three processes at once, each with its own --basetemp (removed afterwards): the slow suites (fault, fuzz:
# marked `slow`) spend their time waiting on real processes and clocks, so on two cores they overlap with the
# rest instead of adding to it (about 5 minutes alone). The two background groups' output follows once they end.
# A background job of a script ignores SIGINT, and so do the processes it starts: a test that stops a child with
# SIGINT (the demo's, the collector's) belongs in the first group, which runs in the foreground.
# ALONE runs afterwards, by itself: the fleet suites measure the cap per wall-clock second at the receiver and hold
# Redis calls to a time limit, so beside the other groups the CPU they wait for blurs what they measure (the two-tier
# test counted 52 and 61 requests in a second for a cap of 50; a cut-off member's steady state 21 at a cap of 20).
ALONE=(tests/fleet)
PYTEST_GROUPS=(
  "-m 'not slow' --ignore=${ALONE[0]}"
  '-m slow tests/fault'
  "-m slow --ignore=tests/fault --ignore=${ALONE[0]}"
)
pytest_groups() {
  local scratch status=0 pids=() i
  scratch=$(mktemp -d)
  for i in 1 2; do
    eval ".venv/bin/pytest -q -p no:cacheprovider ${PYTEST_GROUPS[$i]} --basetemp=$scratch/$i" >"$scratch/$i.log" 2>&1 &
    pids+=($!)
  done
  # They ignore SIGINT: on Ctrl-C (or SIGTERM), end them too rather than leave them running.
  trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$scratch"; exit 130' INT TERM
  eval ".venv/bin/pytest -q ${PYTEST_GROUPS[0]} --basetemp=$scratch/0" || status=1
  for i in 1 2; do
    wait "${pids[$((i - 1))]}" || status=1
    echo "-- pytest ${PYTEST_GROUPS[$i]}:"
    cat "$scratch/$i.log"
  done
  echo "-- pytest, alone: ${ALONE[*]}"
  .venv/bin/pytest -q -p no:cacheprovider "${ALONE[@]}" --basetemp="$scratch/alone" || status=1
  trap - INT TERM
  rm -rf "$scratch"
  return $status
}
step "pytest" pytest_groups
step "clients" scripts/test_clients.sh
step "documented commands" .venv/bin/python scripts/check_documented_commands.py
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all checks passed"

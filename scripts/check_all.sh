#!/usr/bin/env bash
# Every check `make test` runs; each runs even when another failed, and the summary names the failures and how long
# each took, so one run shows everything that needs fixing.
#
# Two phases, to stay within five minutes on two cores:
# 1. A pool of three jobs at a time: four pytest groups, the clients' tests, lint, the documented commands.
#    Much of the suite waits on real processes and clocks rather than computing, so three jobs overlap on two cores
#    instead of adding up. The longest job starts first; the others take a slot as one frees.
# 2. The fleet suites, in two halves at once and with nothing else running: they measure the cap per wall-clock
#    second at the receiver and hold Redis calls to a time limit, so a CPU-heavy neighbour (a compiler, mypy) blurs
#    what they measure (beside the pytest groups, the two-tier test counted 61 requests in a second for a cap of 50).
#    The two halves are light: a few sidecars at 20-50 requests a second each.
# Every job's output is printed whole when it ends, under its name.
set -uo pipefail
# Job control gives each job its own process group, where it keeps SIGINT (a script's background jobs otherwise
# ignore it, and so would the processes the tests start and stop with SIGINT), and lets Ctrl-C end whole groups.
set -m
cd "$(dirname "$0")/.."

SLOTS=3
scratch=$(mktemp -d)
failed=()
summary=()
declare -A job_name=() job_log=() job_started=()
jobs_started=0

lint() {  # the static checks, in order; all run, and a failure is named
  local bad=()
  check() {
    local name=$1
    shift
    echo "-- $name"
    "$@" || bad+=("$name")
  }
  check "ruff check" .venv/bin/ruff check .
  check "ruff format" .venv/bin/ruff format --check .
  check "mypy (strict)" .venv/bin/mypy
  check "buf lint" bash -c "cd protos && ../tools/node_modules/.bin/buf lint"
  check "buf breaking" scripts/check_breaking.sh
  check "python stubs up to date" scripts/gen_protos.sh --check
  check "python sync client up to date" .venv/bin/python scripts/gen_sync_client.py --check
  if [ ${#bad[@]} -gt 0 ]; then
    echo "lint failed: ${bad[*]}"
    return 1
  fi
}

pytest_in() {  # pytest_in DIR ARGS...: pytest with its own --basetemp under the scratch folder
  local dir=$scratch/$1
  shift
  .venv/bin/pytest -q -p no:cacheprovider --basetemp="$dir" "$@"
}

start() {  # start NAME COMMAND...: run a job in the background, its output to its own log
  local name=$1
  shift
  jobs_started=$((jobs_started + 1))
  # `times` in the job's own shell: the CPU its processes used (all the ones it waited for), for the summary.
  ("$@"; status=$?; times >"$scratch/job-$jobs_started.cpu"; exit $status) </dev/null >"$scratch/job-$jobs_started.log" 2>&1 &
  job_name[$!]=$name
  job_log[$!]=$scratch/job-$jobs_started.log
  job_started[$!]=$SECONDS
  echo "   started: $name"
}

cpu_seconds() {  # cpu_seconds FILE: user + system seconds of the children, from the second line `times` wrote
  awk 'NR == 2 {
    total = 0
    for (i = 1; i <= 2; i++) { split($i, part, "m"); total += part[1] * 60 + part[2] }
    printf "%d s", total
  }' "$1" 2>/dev/null
}

finish_one() {  # wait for any job to end; print its output; remember a failure
  local pid status
  wait -n -p pid
  status=$?
  local name=${job_name[$pid]} took=$((SECONDS - ${job_started[$pid]}))
  echo "== $name ($took s, exit $status)"
  cat "${job_log[$pid]}"
  summary+=("$(printf '%4d s  %5s  %s' "$took" "$(cpu_seconds "${job_log[$pid]%.log}.cpu")" "$name")")
  if [ "$status" -ne 0 ]; then failed+=("$name"); fi
  unset "job_started[$pid]"
}

stop_all() {
  local pid
  for pid in "${!job_started[@]}"; do kill -- "-$pid" 2>/dev/null; done
  rm -rf "$scratch"
  exit 130
}
trap stop_all INT TERM

run_pool() {  # run_pool SLOTS: run the queued jobs (QUEUE, "name|command" lines), SLOTS at a time
  local slots=$1 entry
  for entry in "${QUEUE[@]}"; do
    while [ ${#job_started[@]} -ge "$slots" ]; do finish_one; done
    # shellcheck disable=SC2086
    eval "start ${entry}"
  done
  while [ ${#job_started[@]} -gt 0 ]; do finish_one; done
}

# The fleet suites in two halves of about the same length (about a minute each): the two-tier files with the Redis
# timeouts, and the rest of tests/fleet (shared budget, faults).
FLEET_HALF=(tests/fleet/test_tiers.py tests/fleet/test_outcome_tiers.py tests/fleet/test_redis_timeouts.py)

# Longest first (a fresh clone on two cores: the fault suite ~160 s, the rest ~120, the clients ~100, the other slow
# suites ~100, the unit tests ~70, lint ~25, the documented commands ~5), so that no long job starts last.
QUEUE=(
  "'pytest: slow, fault' pytest_in fault -m slow tests/fault"
  "'pytest: not slow, integration and the rest' pytest_in quick -m 'not slow' --ignore=tests/unit --ignore=tests/fleet"
  "'clients' scripts/test_clients.sh"
  "'pytest: slow, the rest' pytest_in slow -m slow --ignore=tests/fault --ignore=tests/fleet"
  "'pytest: not slow, unit' pytest_in unit -m 'not slow' tests/unit"
  "'lint' lint"
  "'documented commands' .venv/bin/python scripts/check_documented_commands.py"
)
# The repository's own packages as bytecode, once (the dependencies were compiled by `uv sync --compile-bytecode`):
# with PYTHONDONTWRITEBYTECODE set, every sidecar, collector and client process the tests start would otherwise
# compile them from source again. Stale files are harmless: Python checks each one against its source's mtime.
.venv/bin/python -m compileall -q sidecar bench clients/python/src >/dev/null
echo "== phase 1: $SLOTS jobs at a time"
run_pool "$SLOTS"

QUEUE=(
  "'pytest: fleet, two tiers and Redis timeouts' pytest_in fleet-half ${FLEET_HALF[*]}"
  "'pytest: fleet, shared budget and faults' pytest_in fleet-rest tests/fleet ${FLEET_HALF[*]/#/--ignore=}"
)
echo "== phase 2: the fleet suites, nothing else running"
run_pool 2

trap - INT TERM
rm -rf "$scratch"
echo "== times: wall clock, CPU (user + system), check; the whole run took $SECONDS s"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all checks passed"

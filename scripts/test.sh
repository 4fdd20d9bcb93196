#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): installs what is missing, then runs
# cargo fmt --check, cfn-lint, clippy -D warnings, and every test against a fresh DynamoDB Local.
# Prints the time of each phase, and fails when the whole run takes longer than its budget
# (TEST_BUDGET_SECONDS, default 2700: 45 minutes on 2 cores).
#   HEAVY=1 scripts/test.sh    the heavier variants: 500 fuzz examples an operation
#                              (FUZZ_EXAMPLES), 4x the callers in the outage load (LOAD_WORKERS); no budget
set -euo pipefail
if [ "${HEAVY:-0}" = 1 ]; then
  export FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-500} LOAD_WORKERS=${LOAD_WORKERS:-64}
  TEST_BUDGET_SECONDS=${TEST_BUDGET_SECONDS:-0}
fi
BUDGET=${TEST_BUDGET_SECONDS:-2700}
TIMES=""
PHASE=""
PHASE_START=$SECONDS
# Starts a phase (and closes the one before it).
phase() {
  if [ -n "$PHASE" ]; then
    TIMES+=$(printf '%6ds  %s' $((SECONDS - PHASE_START)) "$PHASE")$'\n'
  fi
  PHASE=$1
  PHASE_START=$SECONDS
  [ -z "$1" ] || echo "== $1"
}
report_times() {
  phase ""
  printf '\nphase times:\n%s%6ds  total (budget %s)\n' "$TIMES" "$SECONDS" "$([ "$BUDGET" = 0 ] && echo none || echo "${BUDGET}s")"
}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
phase "setup (installs what is missing)"
WITH_BENCH=1 scripts/setup.sh
# shellcheck source=lib.sh
source scripts/lib.sh
ddb_start
trap 'ddb_stop; report_times' EXIT

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cfn-lint template.yaml"
.local/venv/bin/cfn-lint template.yaml
phase "the settlement job builds without the HTTP crates"
if cargo tree --locked -p settle-contests -e normal -i lambda_http >/dev/null 2>&1; then
  echo "functions/settle-contests depends on lambda_http: keep shared's \"http\" feature off for it" >&2
  exit 1
fi
phase "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "the binaries (tests/tests/operations.rs runs functions as Lambda would; tests/py the local API)"
cargo build --workspace --bins --locked
phase "the benchmark's smoke run (scripts/bench.sh --quick on the debug binaries, into a copy of docs/PERFORMANCE.md)"
smoke="$ROOT/.local/bench-smoke"
rm -rf "$smoke" && mkdir -p "$smoke"
cp docs/PERFORMANCE.md "$smoke/PERFORMANCE.md"
cargo run --locked -q -p bench -- --quick --profile dev --no-build --doc "$smoke/PERFORMANCE.md"
phase "Python tests: the template with the SAM transform, the sample-event story, the contract fuzzing"
.local/venv/bin/python -m unittest discover -s tests/py
phase "cargo test (DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB)"
log="$ROOT/.local/cargo-test.log"
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
if [ "$BUDGET" != 0 ] && [ "$SECONDS" -gt "$BUDGET" ]; then
  echo "the run took ${SECONDS}s, over its budget of ${BUDGET}s (TEST_BUDGET_SECONDS): make it faster" >&2
  [ "$status" != 0 ] || status=1
fi
exit "$status"

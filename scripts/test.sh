#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): installs what is missing, then runs
# cargo fmt --check, cfn-lint, clippy -D warnings, and every test against a fresh DynamoDB Local.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh
# shellcheck source=lib.sh
source scripts/lib.sh
ddb_start
trap ddb_stop EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cfn-lint template.yaml"
.local/venv/bin/cfn-lint template.yaml
echo "== the settlement job builds without the HTTP crates"
if cargo tree --locked -p settle-contests -e normal -i lambda_http >/dev/null 2>&1; then
  echo "functions/settle-contests depends on lambda_http: keep shared's \"http\" feature off for it" >&2
  exit 1
fi
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== the binaries (tests/tests/operations.rs runs functions as Lambda would; tests/py the local API)"
cargo build --workspace --bins --locked
echo "== Python tests: the template rendered with the SAM transform, the sample-event story"
.local/venv/bin/python -m unittest discover -s tests/py
echo "== cargo test (DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB)"
log="$ROOT/.local/cargo-test.log"
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"

#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): installs what is missing, then runs
# cargo fmt --check, clippy -D warnings, cfn-lint, and every test against a fresh DynamoDB Local.
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
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB)"
cargo test --workspace --locked

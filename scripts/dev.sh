#!/usr/bin/env bash
# The README's first command: installs what is missing, starts DynamoDB Local, creates the table
# from template.yaml and serves every route on http://127.0.0.1:3000. Ctrl-C stops everything.
#   LOCAL_API_PORT=3001 scripts/dev.sh      another port
#   CAMPAIGN_DEV_CLOCK=0 scripts/dev.sh     ignore x-debug-now (it is on by default locally)
#   DEV_DATA=1 scripts/dev.sh               keep data in .local/dev-data between runs
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh
# shellcheck source=lib.sh
source scripts/lib.sh
extra=()
if [ "${DEV_DATA:-0}" = 1 ]; then
  mkdir -p .local/dev-data
  extra=(-dbPath "$ROOT/.local/dev-data")
fi
ddb_start "${extra[@]}"
trap ddb_stop EXIT
trap 'exit 130' INT TERM
export CAMPAIGN_DEV_CLOCK=${CAMPAIGN_DEV_CLOCK:-1}
export RUST_LOG=${RUST_LOG:-info,hyper=info,aws_smithy_runtime=info,aws_config=warn,rustls=info}
cargo run --quiet -p local-api

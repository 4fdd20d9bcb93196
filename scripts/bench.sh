#!/usr/bin/env bash
# The benchmark (issue 14; docs/PERFORMANCE.md): installs what is missing (wrk, the load
# generator), starts a fresh DynamoDB Local, builds the functions, the floor and the local API
# with the release profile, measures, and rewrites the generated parts of docs/PERFORMANCE.md and
# the charts in docs/perf/.
#   scripts/bench.sh                   the full run (1M board entries; docs/PERFORMANCE.md says how long)
#   scripts/bench.sh --quick           under 5 minutes once the release binaries are built
#   scripts/bench.sh --quick --profile bench-ci   thin LTO: a quicker optimised build (figures not published)
#   scripts/bench.sh --only cold,routes            some sections
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WITH_BENCH=1 scripts/setup.sh
# shellcheck source=lib.sh
source scripts/lib.sh
# A heap big enough for a million board entries (and a million contest entries) in memory.
DDB_JAVA_OPTS=${DDB_JAVA_OPTS:--Xmx8g} ddb_start
trap ddb_stop EXIT
cargo run --locked -p bench -- "$@"

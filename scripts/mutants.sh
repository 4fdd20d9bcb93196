#!/usr/bin/env bash
# Mutation testing of the domain crate (`shared/src/domain`), not part of CI: it takes about
# 15 minutes on 2 cores. Every mutant must be caught by a test or be listed as equivalent, with
# its reason, in docs/TESTING.md.
#
#   scripts/mutants.sh               mutants of shared/src/domain against the domain crate's tests
#   scripts/mutants.sh --workspace   then the mutants that survived, again against every test of
#                                    the workspace (end-to-end tests included; starts DynamoDB Local)
#   scripts/mutants.sh -- ARGS…      extra arguments for cargo mutants (e.g. -- --file shared/src/domain/tiers.rs)
#
# Results: .local/mutants/mutants.out (missed.txt, caught.txt, unviable.txt, outcomes.json). Exits 0
# when every missed mutant is listed as equivalent in docs/TESTING.md, 1 when one is not.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
workspace=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workspace) workspace=1 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: scripts/mutants.sh [--workspace] [-- cargo-mutants args…]" >&2; exit 2 ;;
  esac
  shift
done
WITH_MUTANTS=1 scripts/setup.sh
export PATH="$ROOT/.local/tools/bin:$PATH"
export CARGO_PROFILE_DEV_DEBUG=0
out="$ROOT/.local/mutants"
mkdir -p "$out"
# The domain's source files; its test modules (tests.rs, `mod tests`) are not mutated.
cargo mutants --package shared --file 'shared/src/domain/**/*.rs' --exclude '**/tests.rs' \
  --output "$out" --timeout 120 "${extra[@]}" || status=$?
echo "domain crate's own tests: $(wc -l < "$out/mutants.out/missed.txt") missed, $(wc -l < "$out/mutants.out/caught.txt") caught, $(wc -l < "$out/mutants.out/unviable.txt") unviable"
if [ "$workspace" = 1 ] && [ -s "$out/mutants.out/missed.txt" ]; then
  # shellcheck source=lib.sh
  source scripts/lib.sh
  ddb_start
  trap ddb_stop EXIT
  # --iterate re-tests only what was missed last time.
  cargo mutants --package shared --file 'shared/src/domain/**/*.rs' --exclude '**/tests.rs' \
    --output "$out" --timeout 300 --test-workspace=true --iterate "${extra[@]}" || status=$?
  echo "whole suite: $(wc -l < "$out/mutants.out/missed.txt") missed"
fi
# Every missed mutant must be listed as equivalent in docs/TESTING.md (by file and line, e.g.
# `ledger.rs:397`); any other is a promise no test pins.
unlisted=0
while IFS= read -r mutant; do
  place=$(printf '%s' "$mutant" | sed -E 's#^shared/src/domain/([^:]+):([0-9]+):.*#\1:\2#')
  if ! grep -qF "\`$place\`" docs/TESTING.md; then
    echo "missed and not listed as equivalent in docs/TESTING.md: $mutant"
    unlisted=$((unlisted + 1))
  fi
done < "$out/mutants.out/missed.txt"
if [ "$unlisted" -gt 0 ]; then
  exit 1
fi
if [ "${status:-0}" -ne 0 ] && [ "${status:-0}" -ne 2 ]; then
  exit "$status"   # not "mutants missed" (2): a failed baseline, a timeout…
fi
echo "every missed mutant is listed as equivalent in docs/TESTING.md"

#!/usr/bin/env bash
# The size of what ships: every function's release bootstrap for arm64 (the release profile as in
# Cargo.toml, .cargo/config.toml's target flags), stripped, in bytes and MiB. Installs the cross
# toolchain first (WITH_ARM64=1 scripts/setup.sh). A clean build takes a few minutes.
#   scripts/size.sh                  every function
#   scripts/size.sh checkin points   some
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WITH_ARM64=1 scripts/setup.sh >/dev/null
TARGET=aarch64-unknown-linux-gnu
if [ $# -gt 0 ]; then
  functions=("$@")
else
  mapfile -t functions < <(ls functions)
fi
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
started=$SECONDS
cargo build --release --locked --target "$TARGET" "${packages[@]}"
echo "built in $((SECONDS - started)) s ($(nproc) cores; $(rustc --version))"
printf '%-16s %12s %9s\n' function bytes MiB
for f in "${functions[@]}"; do
  bin="target/$TARGET/release/$f"
  bytes=$(stat -c %s "$bin")
  awk -v f="$f" -v b="$bytes" 'BEGIN { printf "%-16s %12d %9.2f\n", f, b, b / 1048576 }'
done

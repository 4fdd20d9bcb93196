# Sourced by scripts/dev.sh and scripts/test.sh: start and stop DynamoDB Local.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=pins.env
source "$ROOT/scripts/pins.env"
DDB_DIR="$ROOT/.local/dynamodb-local/$DDB_NPM_VERSION"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ddb_start [extra DynamoDB Local flags…] (JVM flags in DDB_JAVA_OPTS): starts it on a free port (or $DDB_PORT), in memory unless
# -dbPath is given, and waits until it accepts connections. Sets DDB_PID, DDB_PORT and exports the
# variables the AWS SDK reads.
ddb_start() {
  DDB_PORT=${DDB_PORT:-$(free_port)}
  local storage=(-inMemory)
  [[ " $* " == *" -dbPath "* ]] && storage=()
  # shellcheck disable=SC2086 # DDB_JAVA_OPTS: JVM flags, word-split on purpose (e.g. -Xmx6g)
  java ${DDB_JAVA_OPTS:-} -Djava.library.path="$DDB_DIR/DynamoDBLocal_lib" -jar "$DDB_DIR/DynamoDBLocal.jar" \
    "${storage[@]}" -sharedDb -disableTelemetry -port "$DDB_PORT" "$@" \
    >"$ROOT/.local/dynamodb-local.log" 2>&1 &
  DDB_PID=$!
  local waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$DDB_PORT") 2>/dev/null; do
    if ! kill -0 "$DDB_PID" 2>/dev/null; then
      echo "DynamoDB Local exited; see .local/dynamodb-local.log:" >&2
      tail -n 20 "$ROOT/.local/dynamodb-local.log" >&2
      return 1
    fi
    sleep 0.2
    waited=$((waited + 1))
    if [ "$waited" -gt 150 ]; then
      echo "DynamoDB Local did not open port $DDB_PORT within 30 s" >&2
      return 1
    fi
  done
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT"
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
  echo "DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB (pid $DDB_PID)"
}

ddb_stop() {
  if [ -n "${DDB_PID:-}" ] && kill -0 "$DDB_PID" 2>/dev/null; then
    kill "$DDB_PID" 2>/dev/null || true
    wait "$DDB_PID" 2>/dev/null || true
  fi
}

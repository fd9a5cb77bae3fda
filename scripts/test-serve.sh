#!/usr/bin/env bash
# The server's tests beyond `swift test`, each bounded and on loopback only: the openai-client
# suite (pytest), schemathesis against docs/openapi.yaml, the chat page in headless Chromium, a
# short load test (every answer checked against its one-by-one answer) and the HAProxy failure
# test. Needs `scripts/setup.sh --test-tools` and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv-api/bin/python
BIN=.build/release/braid
PORT=${BRAID_TEST_PORT:-18080}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

step() { echo "== test-serve: $*" >&2; }

serve() {  # serve PORT ARGS...: start a server and wait for /health
    local port=$1; shift
    "$BIN" serve --port "$port" "$@" >"$WORK/serve-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 240); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$WORK/serve-$port.log" >&2; return 1; }
        sleep 0.5
    done
    echo "test-serve: server on $port not ready" >&2
    return 1
}

step "openai client suite"
BRAID_TEST_PORT=$PORT "$PY" -m pytest Tests/python -q -p no:cacheprovider

step "schemathesis, the page, a short load"
serve $((PORT + 10)) --api-key k --admin-key a
BRAID_API_KEY=k BRAID_ADMIN_KEY=a bash scripts/schemathesis.sh "http://127.0.0.1:$((PORT + 10))"
"$PY" scripts/web-check.py --url "http://127.0.0.1:$((PORT + 10))/" --api-key k --out "${BRAID_WEB_SHOT:-$WORK/web.png}"
serve $((PORT + 11))
"$PY" scripts/serve-load.py --url "http://127.0.0.1:$((PORT + 11))" --clients 8 --requests 200 --distinct 30 --max-seconds 300
for p in "${PIDS[@]}"; do kill -TERM "$p"; wait "$p"; done  # both exit 0 after draining
PIDS=()

step "cluster: SIGTERM one replica, SIGKILL another"
"$PY" scripts/cluster-check.py --front-port $((PORT + 20)) --stats-port $((PORT + 29))
echo "test-serve: all passed" >&2

#!/usr/bin/env bash
# N `braid serve` replicas on loopback behind HAProxy (deploy/haproxy.cfg).
#
#   scripts/serve-cluster.sh [N] [FRONT_PORT]          N replicas (default 2), front port (8080)
#
# Replica i listens on FRONT_PORT+i (or BRAID_REPLICA_PORT+i-1). Ctrl-C / SIGTERM: HAProxy stops
# accepting (soft stop), every replica drains what it has in flight (braid's SIGTERM), then all
# exit; what is still alive after BRAID_DRAIN_TIMEOUT+11 s is killed.
#
# Environment:
#   BRAID               braid binary                  (.build/release/braid under the repo root)
#   BRAID_THREADS       -t of each replica            (cores / N, at least 1)
#   BRAID_PARALLEL      --parallel of each replica    (4)
#   BRAID_DRAIN_TIMEOUT --drain-timeout of each       (60)
#   BRAID_SERVE_ARGS    more `braid serve` arguments, e.g. "-m models/x.gguf --queue 16"
#   BRAID_REPLICA_PORT  port of replica 1             (FRONT_PORT+1)
#   BRAID_STATS_PORT    HAProxy stats page            (8404)
#   BRAID_CHECK_INTER   HAProxy health-check interval (1s)
#   BRAID_CLUSTER_DIR   logs, pid files, exit codes   (a new temporary folder)
#   HAPROXY             haproxy binary                (haproxy on PATH)
#
# BRAID_CLUSTER_DIR holds replica-I.log, replica-I.pid, replica-I.port, replica-I.exit (its exit
# status, written when it ends), haproxy.log (one line per request), haproxy.pid, haproxy.sock
# (admin socket) and, once everything is up, a file named ready.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-2}
FRONT_PORT=${2:-8080}
die() { echo "serve-cluster: $*" >&2; exit 1; }

[[ $N =~ ^[0-9]+$ ]] && (( N >= 1 && N <= 8 )) || die "N must be 1..8 (deploy/haproxy.cfg has 8 server slots), got '$N'"
[[ $FRONT_PORT =~ ^[0-9]+$ ]] && (( FRONT_PORT >= 1 && FRONT_PORT <= 65535 )) || die "bad FRONT_PORT '$FRONT_PORT'"

HAPROXY=${HAPROXY:-haproxy}
command -v "$HAPROXY" >/dev/null 2>&1 || die "haproxy not found (looked for '$HAPROXY' on PATH). Install it: sudo apt-get install -y haproxy (Debian/Ubuntu), or set HAPROXY=/path/to/haproxy."
BRAID=${BRAID:-$ROOT/.build/release/braid}
[[ -x $BRAID ]] || die "braid binary not found at $BRAID: build it (swift build -c release) or set BRAID=/path/to/braid"
CFG=$ROOT/deploy/haproxy.cfg
[[ -f $CFG ]] || die "missing $CFG"

CORES=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
THREADS=${BRAID_THREADS:-$(( CORES / N > 0 ? CORES / N : 1 ))}
PARALLEL=${BRAID_PARALLEL:-4}
DRAIN=${BRAID_DRAIN_TIMEOUT:-60}
[[ $DRAIN =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BRAID_DRAIN_TIMEOUT must be a number of seconds, got '$DRAIN'"
DRAIN_WAIT=$(( 10#${DRAIN%.*} + 11 ))   # how long stop_all waits before killing
FIRST_PORT=${BRAID_REPLICA_PORT:-$((FRONT_PORT + 1))}
STATS_PORT=${BRAID_STATS_PORT:-8404}
DIR=${BRAID_CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/braid-cluster.XXXXXX")}
mkdir -p "$DIR" || die "cannot create $DIR"
DIR=$(cd "$DIR" && pwd)
rm -f "$DIR"/replica-*.{pid,exit,port} "$DIR"/haproxy.pid "$DIR"/ready

# Something already listening there? (connect succeeds => taken)
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Status code of GET /health on a port, or nothing.
health_status() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    IFS=' ' read -r -t 2 _ line _ <&3 || line=
    exec 3<&- 3>&-
    echo "$line"
}

PORTS=()
for ((i = 1; i <= N; i++)); do PORTS+=($((FIRST_PORT + i - 1))); done
for p in "$FRONT_PORT" "$STATS_PORT" "${PORTS[@]}"; do
    port_taken "$p" && die "port $p on 127.0.0.1 is already in use"
done

SETSID=$(command -v setsid || true)
PIDS=()        # replica pids, index i-1
HAPROXY_PID=
STOPPING=0

stop_all() {
    (( STOPPING )) && return
    STOPPING=1
    trap '' INT TERM
    (( ${#PIDS[@]} )) || return 0
    echo "serve-cluster: stopping (replicas drain up to ${DRAIN}s)" >&2
    [[ -n $HAPROXY_PID ]] && kill -USR1 "$HAPROXY_PID" 2>/dev/null   # soft stop: no new connections
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    local deadline=$((SECONDS + DRAIN_WAIT)) alive
    while :; do
        alive=0
        for pid in "${PIDS[@]}" $HAPROXY_PID; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive == 0 || SECONDS >= deadline )) && break
        reap
        sleep 0.2
    done
    for pid in "${PIDS[@]}" $HAPROXY_PID; do
        if kill -0 "$pid" 2>/dev/null; then echo "serve-cluster: pid $pid still alive, killing" >&2; kill -KILL "$pid" 2>/dev/null; fi
    done
    reap
    wait 2>/dev/null
    rm -f "$DIR/ready"
    echo "serve-cluster: stopped; logs in $DIR" >&2
}

# Records the exit status of replicas that ended (once each).
declare -A REAPED=()
reap() {
    local i pid rc
    for ((i = 1; i <= ${#PIDS[@]}; i++)); do
        pid=${PIDS[i-1]}
        [[ -n ${REAPED[$i]:-} ]] && continue
        kill -0 "$pid" 2>/dev/null && continue
        wait "$pid" 2>/dev/null; rc=$?
        REAPED[$i]=1
        echo "$rc" > "$DIR/replica-$i.exit"
        echo "serve-cluster: replica $i (pid $pid, port ${PORTS[i-1]}) exited with status $rc" >&2
    done
}

trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

echo "serve-cluster: $N replicas x $THREADS thread(s), --parallel $PARALLEL, logs in $DIR" >&2
for ((i = 1; i <= N; i++)); do
    p=${PORTS[i-1]}
    # Own session (setsid): a Ctrl-C at the terminal reaches only this script, which then
    # stops HAProxy softly and lets the replicas drain, instead of hard-stopping HAProxy.
    # shellcheck disable=SC2086
    $SETSID "$BRAID" serve --host 127.0.0.1 --port "$p" --parallel "$PARALLEL" -t "$THREADS" \
        --drain-timeout "$DRAIN" ${BRAID_SERVE_ARGS:-} >"$DIR/replica-$i.log" 2>&1 &
    PIDS+=($!)
    echo "$!" > "$DIR/replica-$i.pid"
    echo "$p" > "$DIR/replica-$i.port"
done

for ((i = 1; i <= N; i++)); do
    p=${PORTS[i-1]}
    deadline=$((SECONDS + 120))
    until [[ $(health_status "$p") == 200 ]]; do
        if ! kill -0 "${PIDS[i-1]}" 2>/dev/null; then
            reap
            echo "serve-cluster: replica $i failed to start; last lines of $DIR/replica-$i.log:" >&2
            tail -n 20 "$DIR/replica-$i.log" >&2
            exit 1
        fi
        (( SECONDS < deadline )) || die "replica $i (port $p) not healthy after 120 s; see $DIR/replica-$i.log"
        sleep 0.2
    done
    echo "serve-cluster: replica $i ready on http://127.0.0.1:$p (pid ${PIDS[i-1]})" >&2
done

export BRAID_FRONT_PORT=$FRONT_PORT BRAID_STATS_PORT=$STATS_PORT BRAID_CLUSTER_DIR=$DIR
for ((i = 1; i <= 8; i++)); do unset "BRAID_R$i"; done
for ((i = 1; i <= N; i++)); do export "BRAID_R$i=${PORTS[i-1]}"; done
"$HAPROXY" -q -c -f "$CFG" || die "haproxy rejected $CFG"
$SETSID "$HAPROXY" -db -f "$CFG" >"$DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!
echo "$HAPROXY_PID" > "$DIR/haproxy.pid"

deadline=$((SECONDS + 30))
until [[ $(health_status "$FRONT_PORT") == 200 ]]; do
    kill -0 "$HAPROXY_PID" 2>/dev/null || { cat "$DIR/haproxy.log" >&2; die "haproxy exited"; }
    (( SECONDS < deadline )) || die "no healthy answer through haproxy on port $FRONT_PORT after 30 s"
    sleep 0.2
done
touch "$DIR/ready"

cat <<EOF
braid cluster up: $N replicas behind HAProxy
  API      http://127.0.0.1:$FRONT_PORT/v1/chat/completions   (responses name their replica in X-Served-By)
  health   http://127.0.0.1:$FRONT_PORT/health
  stats    http://127.0.0.1:$STATS_PORT/   (CSV: http://127.0.0.1:$STATS_PORT/;csv)
  replicas $(for ((i = 1; i <= N; i++)); do printf 'r%d=http://127.0.0.1:%s ' "$i" "${PORTS[i-1]}"; done)
  logs     $DIR
Ctrl-C stops everything.
EOF

# Serve until HAProxy ends or a signal comes; note replicas that end on their own meanwhile.
while kill -0 "$HAPROXY_PID" 2>/dev/null; do
    reap
    sleep 0.5 & wait $! 2>/dev/null
done
wait "$HAPROXY_PID"; rc=$?
echo "serve-cluster: haproxy exited with status $rc" >&2
exit 1

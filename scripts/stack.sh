#!/usr/bin/env bash
# `make stack`: the agent, a Prometheus scraping it (with deploy/prometheus/rules.yml) and an
# OpenSearch-compatible event store (osmem-server) receiving its events, on this machine and
# without Docker. Prints the URLs, runs until Ctrl-C (or until one of them exits), then stops all.
#
# Environment (defaults in brackets):
#   AGENT_BIN [target/release/huatuo-bamai]  CONFIG [config/huatuo-bamai.toml]
#   STACK_DIR [/tmp/huatuo-stack]: Prometheus TSDB, event store, spool, control socket, logs
#   AGENT_PORT [19704]  PROM_PORT [9090]  STORE_PORT [9200]
set -euo pipefail
cd "$(dirname "$0")/.."

AGENT_BIN=${AGENT_BIN:-target/release/huatuo-bamai}
CONFIG=${CONFIG:-config/huatuo-bamai.toml}
STACK_DIR=${STACK_DIR:-/tmp/huatuo-stack}
AGENT_PORT=${AGENT_PORT:-19704}
PROM_PORT=${PROM_PORT:-9090}
STORE_PORT=${STORE_PORT:-9200}
RULES="$(pwd)/deploy/prometheus/rules.yml"

die() {
    echo "stack: $*" >&2
    exit 1
}

[ -x "$AGENT_BIN" ] || die "no agent binary at $AGENT_BIN (make build)"
command -v prometheus >/dev/null || die "prometheus is not installed (scripts/install-deps.sh test)"
OSMEM=$(python3 -c 'import osmem_server, os; print(os.path.join(os.path.dirname(osmem_server.__file__), "bin", "osmem-server"))' 2>/dev/null) ||
    die "osmem-server is not installed (scripts/install-deps.sh test)"
[ -x "$OSMEM" ] || die "osmem-server binary missing at $OSMEM"

mkdir -p "$STACK_DIR"
PIDS=()
stop() {
    trap - INT TERM EXIT
    echo "stack: stopping"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "stack: stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Waits up to $2 seconds for URL $1 to answer 2xx.
wait_http() {
    local deadline=$((SECONDS + $2))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "$1 did not answer within $2 s (logs in $STACK_DIR)"
        sleep 0.2
    done
}

# The event store: in memory, gone when the stack stops.
"$OSMEM" -addr "127.0.0.1:$STORE_PORT" -no-stdin-watch -parent-pid $$ \
    </dev/null >"$STACK_DIR/osmem.log" 2>&1 &
PIDS+=($!)
STORE_URL="http://127.0.0.1:$STORE_PORT"
wait_http "$STORE_URL/" 15

cat >"$STACK_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $RULES
scrape_configs:
  - job_name: huatuo-bamai
    static_configs:
      - targets: ["127.0.0.1:$AGENT_PORT"]
EOF
prometheus --config.file="$STACK_DIR/prometheus.yml" \
    --storage.tsdb.path="$STACK_DIR/prometheus" \
    --web.listen-address="127.0.0.1:$PROM_PORT" \
    >"$STACK_DIR/prometheus.log" 2>&1 &
PIDS+=($!)
PROM_URL="http://127.0.0.1:$PROM_PORT"

# The shipped config with the stack's ports and paths (environment overrides the file).
export HUATUO_HTTP__LISTEN="127.0.0.1:$AGENT_PORT"
export HUATUO_CONTROL__SOCKET="$STACK_DIR/control.sock"
export HUATUO_EVENTS__STORE_PATH="$STACK_DIR/events.redb"
export HUATUO_EVENTS__ELASTICSEARCH__ENABLED=true
export HUATUO_EVENTS__ELASTICSEARCH__ADDRESSES="$STORE_URL"
export HUATUO_EVENTS__ELASTICSEARCH__SPOOL_DIR="$STACK_DIR/es-spool"
"$AGENT_BIN" --config "$CONFIG" >"$STACK_DIR/agent.log" 2>&1 &
PIDS+=($!)
AGENT_URL="http://127.0.0.1:$AGENT_PORT"

wait_http "$PROM_URL/-/ready" 30
wait_http "$AGENT_URL/readyz" 90

cat <<EOF
stack: up (logs and data in $STACK_DIR; Ctrl-C stops everything)
  agent status page  $AGENT_URL/
  agent metrics      $AGENT_URL/metrics
  prometheus         $PROM_URL/graph   (alert rules: $PROM_URL/alerts)
  event store        $STORE_URL/huatuo_bamai/_search
  control            $AGENT_BIN ctl --socket $STACK_DIR/control.sock status
EOF

# Whichever exits first ends the stack: say which, stop the rest.
set +e
wait -n "${PIDS[@]}"
rc=$?
for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        name=$(echo osmem-server prometheus agent | cut -d' ' -f$((i + 1)))
        echo "stack: $name exited (status $rc); see $STACK_DIR/*.log" >&2
    fi
done
exit "$rc"

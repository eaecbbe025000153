#!/usr/bin/env bash
# Latency and throughput of GET /health and GET /health/ready, measured with oha against a
# release build on SQLite (and on PostgreSQL when AGENTD_BENCH_DATABASE_URL is set).
#
#   bench/health.sh                 # fixed rate 1,000 req/s for 30 s, then max throughput
#   RATE=1000 DURATION=30s CONNECTIONS=50 bench/health.sh
#
# Needs oha (`cargo install --locked oha`). Prints oha's summaries; figures go to
# docs/benchmarks.md with the command that produced them.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE="${RATE:-1000}"
DURATION="${DURATION:-30s}"
CONNECTIONS="${CONNECTIONS:-50}"
PORT="${PORT:-18080}"

command -v oha >/dev/null || { echo "oha is not installed: cargo install --locked oha" >&2; exit 1; }
cargo build --release --locked -p agentd-cli >&2
BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/release/agentd"

workdir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$workdir"' EXIT

start() {
  (cd "$workdir" && env -i PATH="$PATH" AGENTD_BIND="127.0.0.1:$PORT" AGENTD_LOG=warn \
     ${AGENTD_BENCH_DATABASE_URL:+AGENTD_DATABASE_URL="$AGENTD_BENCH_DATABASE_URL"} \
     "$BIN" serve 2>"$workdir/server.log") &
  server=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "server did not become ready" >&2; cat "$workdir/server.log" >&2; exit 1
}

start
backend=sqlite
[ -n "${AGENTD_BENCH_DATABASE_URL:-}" ] && backend=postgres
echo "# agentd $("$BIN" --version | cut -d' ' -f2), $(nproc) cores, database: $backend"
for path in /health /health/ready; do
  # Warm up: connections, the runtime's threads, the database pool.
  oha --no-tui -z 3s -q "$RATE" -c "$CONNECTIONS" "http://127.0.0.1:$PORT$path" >/dev/null
  echo
  echo "## GET $path at a fixed $RATE req/s for $DURATION ($CONNECTIONS connections)"
  oha --no-tui -z "$DURATION" -q "$RATE" -c "$CONNECTIONS" --latency-correction \
    "http://127.0.0.1:$PORT$path"
  echo
  echo "## GET $path, as fast as possible for 10s ($CONNECTIONS connections)"
  oha --no-tui -z 10s -c "$CONNECTIONS" "http://127.0.0.1:$PORT$path"
done

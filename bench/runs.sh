#!/usr/bin/env bash
# Runs benchmarks: throughput of no-op runs beside Celery + Redis running a no-op task on the
# same machine, enqueue and pickup latency, and 10,000 runs in flight
# (crates/cli/benches/runs.rs, release build, the real `agentd serve`).
#
#   bench/runs.sh                                    # SQLite, every scenario, then Celery
#   AGENTD_TEST_DATABASE_URL=postgres://… BENCH_DB=postgres bench/runs.sh
#   BENCH_SCENARIOS=throughput,latency bench/runs.sh
#   CELERY=0 bench/runs.sh                           # skip Celery
#
# Celery needs python3 with venv and Redis at 127.0.0.1:6379 (database 15 is used and flushed);
# the script makes a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/agentd-bench-celery and
# installs celery and redis there. Prints the figures; docs/benchmarks.md keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."

THROUGHPUT_RUNS="${THROUGHPUT_RUNS:-2000}"
export THROUGHPUT_RUNS
echo "# $(nproc) cores; $(uptime)"
cargo bench --locked -p agentd-cli --bench runs

if [ "${CELERY:-1}" != 0 ]; then
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/agentd-bench-celery"
  [ -x "$venv/bin/celery" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet celery redis packaging; }
  redis-cli -n 15 flushdb >/dev/null
  echo
  echo "## Celery $("$venv/bin/celery" --version | cut -d' ' -f1) + Redis: $THROUGHPUT_RUNS no-op tasks, prefork pool of ${CELERY_CONCURRENCY:-2} (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
  (cd bench && exec "$venv/bin/python" celery_noop.py worker "${CELERY_CONCURRENCY:-2}") &
  worker=$!
  trap 'kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT
  (cd bench && "$venv/bin/python" celery_noop.py bench "$THROUGHPUT_RUNS")
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

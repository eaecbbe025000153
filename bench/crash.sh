#!/usr/bin/env bash
# Crash safety, repeated: the e2e test that kills `agentd serve` with SIGKILL while 50 runs are
# in flight and checks that nothing is lost or repeated (crates/cli/tests/e2e/crash.rs), run
# REPETITIONS times on SQLite and, when AGENTD_TEST_DATABASE_URL is set, on PostgreSQL.
#
#   AGENTD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bench/crash.sh
#   REPETITIONS=5 bench/crash.sh
#
# Prints one line per repetition and a summary; the figures go to docs/runs.md.
set -euo pipefail
cd "$(dirname "$0")/.."

REPETITIONS="${REPETITIONS:-20}"
cargo test --locked -p agentd-cli --test e2e --no-run >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "# $(nproc) cores; before: $(uptime)"
started=$(date +%s)
status=0
AGENTD_CRASH_REPETITIONS="$REPETITIONS" cargo test --locked -p agentd-cli --test e2e crash:: \
  -- --nocapture --test-threads 1 2>&1 | tee "$log" | grep -E '^(crash |test |thread )' || status=$?
grep -q '^test result: ok' "$log" || status=1
echo "# after: $(uptime)"
echo "# $(grep -o 'crash sqlite #[0-9]*:' "$log" | wc -l) SQLite and $(grep -o 'crash postgres #[0-9]*:' "$log" | wc -l) PostgreSQL repetitions in $(( $(date +%s) - started )) s"
echo "# runs in flight at the kill: $(grep -o '[0-9]* runs in flight' "$log" | awk '{s+=$1} END {print s+0}')," \
  "unrecorded replies asked again: $(grep -o '[0-9]* unrecorded' "$log" | awk '{s+=$1} END {print s+0}')," \
  "calls of unknown outcome: $(grep -o '[0-9]* calls of unknown' "$log" | awk '{s+=$1} END {print s+0}')," \
  "slowest takeover after lease expiry: $(grep -o 'at most [0-9.]* s' "$log" | awk '{if ($3>m) m=$3} END {print m+0}') s"
grep -E '^test result' "$log"
grep -A6 'panicked at' "$log" || true
exit "$status"

#!/usr/bin/env bash
# Where the bridge's CPU goes during one load scenario: runs the load
# benchmark for one scenario and samples the bridge process with perf.
#
#   scripts/profile.sh [sign-in|refresh] [redis|memory] [SECONDS]
#
# Needs perf (Debian: linux-perf) and, for Redis, redis-server. Prints perf's
# flat profile by shared object and symbol; the data stays in target/.
set -euo pipefail
scenario=${1:-sign-in}
store=${2:-redis}
secs=${3:-15}
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
cargo bench --bench load --no-run
log=$(mktemp)
cargo bench --bench load -- --store "$store" --scenario "$scenario" --duration "$secs" --no-peer 2>"$log" &
bench=$!
pid=""
for _ in $(seq 1 300); do
  pid=$(grep -o 'the bridge runs as pid [0-9]*' "$log" | grep -o '[0-9]*$' || true)
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { cat "$log" >&2; exit 1; }
data="target/perf-$scenario-$store.data"
# The scenario starts right after the pid is printed; sample most of it.
perf record -F 997 -p "$pid" -o "$data" -- sleep $((secs - 1)) 2>/dev/null
wait "$bench"
perf report -i "$data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45

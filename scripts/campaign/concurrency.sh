#!/usr/bin/env bash
# The concurrency campaign's long mode (#16 item 2): eight workers on one
# store for 60 s (CI runs 15 s), RUNS times in a row (3 by default); stops
# at the first failure. Usage: scripts/campaign/concurrency.sh [SECS] [RUNS]
# Prints each run's summary line; RELIABILITY.md records the runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export STRATA_CONCURRENCY_SECS=${1:-60}
runs=${2:-3}
cargo nextest run -p strata-cli --test concurrency_campaign --no-run
for i in $(seq 1 "$runs"); do
  echo "run $i of $runs (${STRATA_CONCURRENCY_SECS} s)"
  if ! cargo nextest run -p strata-cli --test concurrency_campaign --no-capture 2>&1 |
    grep -E "concurrency campaign|panicked|worker [0-9]|stdout:|stderr:|Error|lost|PASS|FAIL|Summary"; then
    echo "run $i failed"
    exit 1
  fi
done
echo "$runs runs clean"

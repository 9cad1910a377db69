#!/usr/bin/env bash
# The crash campaign's long mode (#16): every operation of
# crates/strata-cli/tests/crash_campaign.rs killed with SIGKILL at 100
# random moments (CI runs 10). Usage: scripts/campaign/crash.sh [TRIALS] [SEED]
# Prints each operation's summary line; RELIABILITY.md records the runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export STRATA_CRASH_TRIALS=${1:-100}
[ -n "${2:-}" ] && export STRATA_CRASH_SEED=$2
cargo nextest run -p strata-cli --test crash_campaign --no-fail-fast --no-capture 2>&1 |
  grep -E "trials clean|panicked|trial [0-9]+ of|PASS|FAIL|Summary"

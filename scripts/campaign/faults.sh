#!/usr/bin/env bash
# The fault campaign's long mode (#16 item 3): the whole fault campaign
# (full disk, read-only store, failing registry, SeaweedFS restart) with
# ROUNDS rounds of pull and push through the failing proxy (CI runs 3).
# Needs root (tmpfs mounts) and `weed` for the S3 case.
# Usage: scripts/campaign/faults.sh [ROUNDS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/../.."
export STRATA_FAULT_ROUNDS=${1:-20}
[ -n "${2:-}" ] && export STRATA_FAULT_SEED=$2
cargo nextest run -p strata-cli --test fault_campaign --no-fail-fast --no-capture 2>&1 |
  grep -E "on a full disk|through the failing|failed after|push across|panicked|PASS|FAIL|Summary"

#!/usr/bin/env bash
# Runs every check and test of strata: formatting, clippy, then the whole
# test suite (unit, CLI end to end, hostile inputs, interop with skopeo,
# umoci, oci-image-tool, podman and docker when installed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
state=$(mktemp -d /tmp/strata-test.XXXXXX)
pidfile=$(scripts/dockerd-up.sh "$state")
cleanup() {
  if [ -n "$pidfile" ] && [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
}
trap cleanup EXIT
# The conformance corpora are read from ../shared/conformance when present.
cargo nextest run --workspace --no-fail-fast

#!/usr/bin/env bash
# Starts a private dockerd for the interop tests when docker.io is installed
# and no daemon answers yet (flags from shared/peers: no bridge, no iptables).
# Prints the PID file it wrote, or nothing. Usage: dockerd-up.sh STATE_DIR
set -uo pipefail
S=${1:?usage: dockerd-up.sh STATE_DIR}
D=/usr/bin/docker
command -v dockerd >/dev/null 2>&1 && [ -x $D ] || { echo "dockerd-up: docker.io not installed; docker interop tests will skip" >&2; exit 0; }
$D info >/dev/null 2>&1 && { echo "dockerd-up: a docker daemon is already running" >&2; exit 0; }
mkdir -p "$S"
setsid dockerd --storage-driver=overlay2 --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
  --data-root=/var/lib/strata-test-docker --exec-root="$S/exec" --pidfile="$S/dockerd.pid" \
  >"$S/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 120); do $D info >/dev/null 2>&1 && break; sleep 0.5; done
if $D info >/dev/null 2>&1; then
  echo "$S/dockerd.pid"
else
  echo "dockerd-up: dockerd did not start; docker interop tests will skip. Last log lines:" >&2
  tail -5 "$S/dockerd.log" >&2
fi

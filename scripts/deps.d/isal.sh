#!/usr/bin/env bash
# ISA-L (#17): Debian's libisal-dev, whose igzip inflates gzip layers on
# pull faster than zlib-rs (strata-layer links it when its headers are there
# at build time, else falls back to zlib-rs). Idempotent; prints a summary.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if dpkg-query -W -f='${Status}' libisal-dev 2>/dev/null | grep -q 'install ok installed'; then
  echo "isal: libisal-dev already installed"
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt-get update >"$log" 2>&1 || true
if apt-get install -y --no-install-recommends libisal-dev >>"$log" 2>&1; then
  echo "isal: installed libisal-dev"
else
  echo "isal: could not install libisal-dev (gzip layers are inflated by zlib-rs)"
fi
exit 0

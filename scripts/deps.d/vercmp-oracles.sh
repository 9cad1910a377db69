#!/usr/bin/env bash
# The reference implementations strata-vercmp's tests compare against:
# dpkg (always there), python3-rpm (rpm.ver), golang-go (its vendored
# golang.org/x/mod/semver), ruby (Gem::Version), a JDK (java runs the oracle
# from source) with Debian's maven-artifact jar (ComparableVersion), and
# Python's `packaging` in a venv and npm's `semver` under /opt/strata-deps.
# apk-tools is not packaged in Debian 12: apk is tested against a recorded
# apk-tools run (crates/strata-vercmp/tests/data) instead.
# Idempotent; prints a one-line summary. Needs root (apt-get).
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
D=/opt/strata-deps
PKGS=(python3-rpm golang-go ruby default-jdk-headless libmaven3-core-java python3-venv nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodejs from another source (e.g. nodesource) brings its own npm.
if command -v npm >/dev/null 2>&1; then
  keep=(); for p in "${missing[@]}"; do [ "$p" = npm ] || [ "$p" = nodejs ] || keep+=("$p"); done; missing=("${keep[@]}")
fi
done_=(); failed=()
if [ ${#missing[@]} -gt 0 ]; then
  log=$(mktemp)
  if ! { apt-get update >"$log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; then
    for p in "${missing[@]}"; do
      if apt-get install -y --no-install-recommends "$p" >>"$log" 2>&1; then done_+=("$p"); else failed+=("$p"); fi
    done
  else
    done_+=("${missing[@]}")
  fi
  rm -f "$log"
fi
if [ ! -x "$D/pyoracle/bin/python" ] || ! "$D/pyoracle/bin/python" -c 'import packaging' 2>/dev/null; then
  if /usr/bin/python3 -m venv "$D/pyoracle" >/dev/null 2>&1 && "$D/pyoracle/bin/pip" install -q packaging >/dev/null 2>&1; then
    done_+=("packaging(venv)")
  else
    failed+=("packaging(venv)")
  fi
fi
if [ ! -f "$D/node-oracle/node_modules/semver/package.json" ]; then
  mkdir -p "$D/node-oracle"
  if (cd "$D/node-oracle" && npm install --silent --no-audit --no-fund semver >/dev/null 2>&1); then
    done_+=("semver(npm)")
  else
    failed+=("semver(npm)")
  fi
fi
msg="vercmp-oracles:"
if [ ${#done_[@]} -eq 0 ]; then msg+=" everything already installed"; else msg+=" installed ${done_[*]}"; fi
[ ${#failed[@]} -gt 0 ] && msg+="; could not install ${failed[*]} (the tests that need them will say so)"
echo "$msg"
exit 0

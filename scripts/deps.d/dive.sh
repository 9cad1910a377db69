#!/usr/bin/env bash
# dive v0.12.0 (wagoodman/dive), the reference for `strata image analyze`'s
# efficiency score and wasted bytes: built with Debian's golang-go into
# /opt/strata-deps/bin/dive. Idempotent; prints a summary. The analyze test
# compares with it when it is there and recomputes the score itself when not.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
BIN=/opt/strata-deps/bin
VERSION=v0.12.0
if [ -x "$BIN/dive" ] && "$BIN/dive" --version 2>/dev/null | grep -q "${VERSION#v}"; then
  echo "dive: $VERSION already installed in $BIN"
  exit 0
fi
log=$(mktemp)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work" "$log"' EXIT
if ! command -v go >/dev/null 2>&1; then
  if ! { apt-get update >"$log" 2>&1 && apt-get install -y --no-install-recommends golang-go >>"$log" 2>&1; }; then
    echo "dive: could not install golang-go (the analyze test recomputes the score itself)"
    exit 0
  fi
fi
mkdir -p "$BIN"
# The version string dive prints comes from -ldflags, as its release build sets it.
if GOPATH="$work/gopath" GOMODCACHE="$work/modcache" GOCACHE="$work/cache" GOFLAGS=-modcacherw GOBIN="$BIN" \
  go install -ldflags "-X main.version=${VERSION#v}" "github.com/wagoodman/dive@$VERSION" >"$log" 2>&1; then
  echo "dive: installed $VERSION in $BIN"
else
  echo "dive: could not build $VERSION with $(go version 2>/dev/null) (the analyze test recomputes the score itself):"
  tail -5 "$log"
fi
exit 0

#!/usr/bin/env bash
# strata's multi-platform build beside its single-platform build: the
# Dockerfile of the multi-platform test (a FROM --platform=$BUILDPLATFORM
# stage, a COPY --from of it, a RUN recording `uname -m`) built for
# linux/amd64 alone and for linux/amd64,linux/arm64,linux/arm/v7 (arm64 and
# arm/v7 under Debian's qemu-user-static), cold and fully cached. The base
# is the busybox rootfs per platform (Debian's busybox-static for arm64 and
# armhf, from scripts/deps.d/emulation.sh), one multi-platform image in the
# store. Prints a markdown table of medians (hyperfine).
#
#   bench/platforms.sh          # RUNS=5
#
# Cold = the build cache pruned and the result removed before each run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/lib.sh
bench_deps
bench_strata
W=$(mktemp -d /tmp/strata-bench-platforms.XXXXXX)
cleanup() { [ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
export STRATA_ROOT=$W/strata
F=/opt/strata-deps/foreign-busybox
ls $F/*_arm64.deb $F/*_armhf.deb >/dev/null 2>&1 || { echo "bench: no foreign busybox-static in $F (scripts/deps.d/emulation.sh)" >&2; exit 1; }
$S buildx install-emulators arm64 arm >/dev/null 2>&1 || true
$S buildx ls | grep -q 'linux/arm/v7' || { echo "bench: no arm emulators (strata buildx install-emulators arm64 arm)" >&2; exit 1; }

bash scripts/busybox-rootfs.sh "$W/rootfs-amd64" >/dev/null
for a in arm64 armhf; do
  cp -a "$W/rootfs-amd64" "$W/rootfs-$a"
  mkdir -p "$W/deb-$a" && dpkg-deb -x $F/*_$a.deb "$W/deb-$a"
  cp "$W/deb-$a/bin/busybox" "$W/rootfs-$a/bin/busybox"
done
bench_registry_up "$W"
R=127.0.0.1:$REG_PORT
parts=()
for p in amd64:linux/amd64 arm64:linux/arm64 armhf:linux/arm/v7; do
  a=${p%%:*} plat=${p#*:}
  $S import --platform "$plat" "$W/rootfs-$a" "$R/base/bb:$a" >/dev/null
  $S push -q "$R/base/bb:$a" >/dev/null
  parts+=("$R/base/bb:$a")
done
$S buildx imagetools create -t "$R/base/bb:multi" "${parts[@]}" >/dev/null 2>&1
$S pull -q --all-platforms "$R/base/bb:multi" >/dev/null

mkdir -p "$W/ctx"
cat >"$W/ctx/Dockerfile" <<DF
FROM --platform=\$BUILDPLATFORM $R/base/bb:multi AS tool
ARG BUILDARCH
RUN echo built-on-\$BUILDARCH > /tool
FROM $R/base/bb:multi
COPY --from=tool /tool /tool
RUN uname -m > /arch
DF

results=$W/results.tsv
: >"$results"
measure() { bench_measure "$1" "$2" --runs "$RUNS" "${@:3}"; }
cold="$S rmi -f app:1 >/dev/null 2>&1; $S buildx prune -f >/dev/null 2>&1; true"
for sc in "1 platform:linux/amd64" "3 platforms:linux/amd64,linux/arm64,linux/arm/v7"; do
  name=${sc%%:*} plats=${sc#*:}
  b="$S build -q --platform $plats -t app:1 $W/ctx"
  measure "$name cold" strata --prepare "$cold" "$b"
  eval "$b" >/dev/null
  measure "$name cached" strata --warmup 1 "$b"
done

echo "| scenario | strata |"
echo "|---|---|"
python3 - "$results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, tool, m = line.rstrip("\n").split("\t")
    rows[name] = m
for name, m in rows.items():
    shown = m if m == "failed" else f"{float(m) * 1000:.0f} ms"
    print(f"| {name} | {shown} |")
PY

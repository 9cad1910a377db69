#!/usr/bin/env bash
# A build on an empty store with a warm registry cache (#17): a 10-step
# Dockerfile on the Debian bookworm minbase base, its cache exported once
# (`--cache-to type=registry,mode=max`) to a local registry (Debian's
# docker-registry on 127.0.0.1), then timed against pulling the image it
# builds, each from an empty store; prints a markdown table of medians
# (hyperfine) and the ratio (goal: at most 1.5x the pull).
#
#   bench/cache.sh             # RUNS=5
#   RUNS=3 bench/cache.sh
#   STRATA_BIN=/path/to/strata bench/cache.sh
#
#   cached build   `strata build --cache-from REG/bench/cache:c CTX` on an
#                  empty store: the base pulled, every step CACHED, the
#                  steps' layers fetched from the cache
#   pull           `strata pull REG/bench/cache-app:1` (the image the build
#                  made, pushed) on an empty store
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/lib.sh
bench_deps
command -v hyperfine >/dev/null || { echo "bench/cache: hyperfine is not installed" >&2; exit 1; }
bench_strata
bench_debian_tar
W=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-cachebench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
bench_registry_up "$W"
pids+=("$REG_PID")
REG=127.0.0.1:$REG_PORT
results=$W/results.tsv
: >"$results"

echo "bench/cache: seeding the base, the image and its cache" >&2
STRATA_ROOT=$W/seed $S import "$TAR" "$REG/bench/cache-base:1" >/dev/null
STRATA_ROOT=$W/seed $S push -q "$REG/bench/cache-base:1" >/dev/null
CTX=$W/ctx
mkdir -p "$CTX"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$CTX/blob.bin"
cat >"$CTX/Dockerfile" <<DF
FROM $REG/bench/cache-base:1
ENV APP=/app
WORKDIR /app
RUN head -c 8388608 /dev/zero | tr '\\0' 'a' > /app/a.txt
COPY blob.bin /app/blob.bin
RUN seq 1 200000 > /app/numbers.txt
ARG LEVEL=3
RUN echo "level \$LEVEL" > /app/level
RUN mkdir -p /app/tree && for i in \$(seq 1 300); do echo \$i > /app/tree/f\$i; done
LABEL bench=cache
RUN cp /app/numbers.txt /app/numbers2.txt
DF
STRATA_ROOT=$W/seed $S build -q --network none -t "$REG/bench/cache-app:1" \
  --cache-to "type=registry,ref=$REG/bench/cache:c,mode=max" "$CTX" >/dev/null
STRATA_ROOT=$W/seed $S push -q "$REG/bench/cache-app:1" >/dev/null
# A check before timing: every step CACHED on an empty store.
out=$(STRATA_ROOT=$W/check $S build --progress plain --network none --cache-from "$REG/bench/cache:c" "$CTX" 2>&1)
n=$(grep -c CACHED <<<"$out" || true)
echo "bench/cache: the check build: $n steps CACHED" >&2

bench_measure "10-step build, empty store, warm registry cache" strata --runs "$RUNS" --warmup 1 \
  --prepare "rm -rf $W/b" "STRATA_ROOT=$W/b $S build -q --network none --cache-from $REG/bench/cache:c $CTX"
bench_measure "pull of the image it builds, empty store" strata --runs "$RUNS" --warmup 1 \
  --prepare "rm -rf $W/p" "STRATA_ROOT=$W/p $S pull -q $REG/bench/cache-app:1"

python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| scenario | strata (s) |")
print("|---|---|")
vals = {}
for name, _, m in rows:
    print(f"| {name} | {m if m == 'failed' else f'{float(m):.3f}'} |")
    vals[name] = m
b, p = [vals.get(k) for k in ("10-step build, empty store, warm registry cache", "pull of the image it builds, empty store")]
if b and p and "failed" not in (b, p):
    print(f"\ncached build / pull: {float(b) / float(p):.2f}x (goal: at most 1.5x)")
PY

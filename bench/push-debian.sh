#!/usr/bin/env bash
# Push of a fresh Debian image (#17): the bookworm minbase rootfs plus a
# unique file (a layer no registry or store has yet, ~121 MB as a tar),
# imported into each tool's store before timing, then `strata push` beside
# `docker push` (the running daemon, or a private one) to Debian's
# docker-registry on 127.0.0.1; each compresses and uploads the layer.
# Prints a markdown table of medians (hyperfine) and the ratio
# (goal: strata at most 0.6 s here and 0.1x docker's). strata also with
# `--compression zstd`.
#
#   bench/push-debian.sh             # RUNS=5
#   RUNS=3 STRATA_BIN=/path/to/strata bench/push-debian.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/lib.sh
bench_deps
command -v hyperfine >/dev/null || { echo "bench/push-debian: hyperfine is not installed" >&2; exit 1; }
bench_strata
bench_debian_tar
W=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-pushdeb.XXXXXX")
pids=()
REG=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$REG" ] && [ -n "${DOCKER_OK:-}" ]; then
    for k in $(seq 0 $((RUNS + 1))); do $D rmi -f "$REG/bench/pd-docker:$k" >/dev/null 2>&1 || true; done
  fi
  bench_docker_down
  rm -rf "$W"
}
trap cleanup EXIT
bench_registry_up "$W"
pids+=("$REG_PID")
REG=127.0.0.1:$REG_PORT
export DOCKER_CONFIG=$W/docker-config
mkdir -p "$DOCKER_CONFIG" && echo '{"auths":{}}' >"$DOCKER_CONFIG/config.json"
bench_docker_up "$W/dockerd"
[ -n "$DOCKER_OK" ] || echo "bench/push-debian: no docker daemon: docker column skipped" >&2

fresh() { # path
  cp "$TAR" "$1"
  head -c 32 /dev/urandom | od -An -tx1 >"$W/bench-stamp"
  tar -rf "$1" -C "$W" ./bench-stamp
}
tools=(strata strata-zstd)
[ -n "$DOCKER_OK" ] && tools+=(docker)
echo "bench/push-debian: preparing $((RUNS + 2)) fresh images per tool" >&2
for k in $(seq 0 $((RUNS + 1))); do
  for t in "${tools[@]}"; do
    fresh "$W/$t-$k.tar"
    case $t in
      strata*) STRATA_ROOT=$W/$t $S import "$W/$t-$k.tar" "$REG/bench/pd-$t:$k" >/dev/null ;;
      docker) $D import "$W/$t-$k.tar" "$REG/bench/pd-docker:$k" >/dev/null ;;
    esac
    rm -f "$W/$t-$k.tar"
  done
done
results=$W/results.tsv
: >"$results"
export -f bench_next
export W
measure() { bench_measure "push of a fresh Debian image" "$1" --shell bash --runs "$RUNS" --warmup 1 "$2"; }
measure strata "k=\$(bench_next strata); STRATA_ROOT=$W/strata $S push -q $REG/bench/pd-strata:\$k"
measure strata-zstd "k=\$(bench_next strata-zstd); STRATA_ROOT=$W/strata-zstd $S push -q --compression zstd $REG/bench/pd-strata-zstd:\$k"
[ -n "$DOCKER_OK" ] && measure docker "k=\$(bench_next docker); $D push -q $REG/bench/pd-docker:\$k >/dev/null"
python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
v = {t: m for _, t, m in rows}
print("| tool | push of a fresh Debian image (s) | vs strata |")
print("|---|---|---|")
base = v.get("strata")
for t, m in v.items():
    ratio = f"{float(m) / float(base):.2f}x" if m != "failed" and base not in (None, "failed") else ""
    print(f"| {t} | {m if m == 'failed' else f'{float(m):.3f}'} | {ratio} |")
PY

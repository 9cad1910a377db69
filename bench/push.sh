#!/usr/bin/env bash
# Push to a local registry: strata push beside docker push, skopeo copy (from
# an oci: layout) and podman push, same kind of image, same machine; prints a
# markdown table of medians (hyperfine) and ratios to strata.
#
#   bench/push.sh             # RUNS=5
#   RUNS=3 bench/push.sh
#   STRATA_BIN=/path/to/strata bench/push.sh   # measure that binary
#
# The image: one layer holding a 16 MiB file of random bytes, a different file
# for every run of every tool (RUNS+1 variants each, tags 0..RUNS, made before
# timing starts), so that the registry (Debian's docker-registry, CNCF
# distribution, on 127.0.0.1) never has a blob already and nothing is
# skipped or mounted. Each tool starts from the image in its own store as a
# plain (uncompressed) layer, as `import` leaves it, so each gzip-compresses
# and uploads the layer, then the config and the manifest:
#   strata   `strata import` in setup; timed: `strata push`
#   skopeo   `skopeo copy` of the same kind of tar (docker-archive) into an
#            oci: layout in setup; timed: `skopeo copy oci:DIR docker://…`
#   podman   `podman import` into a private --root in setup; timed: `podman push`
#   docker   `docker import` in setup; timed: `docker push` (the running
#            daemon, or a private one from scripts/dockerd-up.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/lib.sh
bench_deps
command -v hyperfine >/dev/null || { echo "bench/push: hyperfine is not installed" >&2; exit 1; }
bench_strata
W=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-pushbench.XXXXXX")
pids=()
REG=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$REG" ] && [ -n "${DOCKER_OK:-}" ]; then
    for k in $(seq 0 "$RUNS"); do $D rmi -f "$REG/bench/push-docker:$k" >/dev/null 2>&1 || true; done
  fi
  bench_docker_down
  [ -d "$W/podman" ] && podman --root "$W/podman" --runroot "$W/podman-run" rmi -af >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

bench_registry_up "$W"
pids+=("$REG_PID")
PORT=$REG_PORT
REG=127.0.0.1:$PORT
export DOCKER_CONFIG=$W/docker-config
mkdir -p "$DOCKER_CONFIG" && echo '{"auths":{}}' >"$DOCKER_CONFIG/config.json"

bench_docker_up "$W/dockerd"
[ -n "$DOCKER_OK" ] || echo "bench/push: no docker daemon: docker column skipped" >&2
PODMAN_CONF=
command -v podman >/dev/null && PODMAN_CONF=$(bash scripts/podman-env.sh "$W/podman-conf")
P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay"

# A rootfs tar with 16 MiB of fresh random bytes.
fresh_tar() { # path
  local d
  d=$(mktemp -d "$W/rootfs.XXXXXX")
  head -c $((16 * 1024 * 1024)) /dev/urandom >"$d/data.bin"
  tar --numeric-owner -C "$d" -cf "$1" .
}

echo "bench/push: preparing $((RUNS + 1)) fresh 16 MiB images per tool" >&2
tools=(strata)
command -v skopeo >/dev/null && tools+=(skopeo)
[ -n "$PODMAN_CONF" ] && tools+=(podman)
[ -n "$DOCKER_OK" ] && tools+=(docker)
for k in $(seq 0 "$RUNS"); do
  for t in "${tools[@]}"; do
    tar=$W/$t-$k.tar
    fresh_tar "$tar"
    case $t in
      strata) STRATA_ROOT=$W/strata $S import "$tar" "$REG/bench/push-strata:$k" >/dev/null ;;
      skopeo)
        # A docker-archive of the same tar (strata save: plain layer), copied
        # into an oci: layout as is.
        STRATA_ROOT=$W/skopeo-src $S import "$tar" "bench/push-skopeo:$k" >/dev/null
        STRATA_ROOT=$W/skopeo-src $S save -o "$W/skopeo-$k.archive" "bench/push-skopeo:$k"
        skopeo copy -q "docker-archive:$W/skopeo-$k.archive" "oci:$W/oci-$k:x" ;;
      podman) CONTAINERS_CONF=$PODMAN_CONF $P import -q "$tar" "$REG/bench/push-podman:$k" >/dev/null ;;
      docker) $D import "$tar" "$REG/bench/push-docker:$k" >/dev/null ;;
    esac
  done
done

results=$W/results.tsv
: >"$results"
measure() { bench_measure push "$1" --shell bash --runs "$RUNS" --warmup 1 "${@:2}"; }
export -f bench_next
export W

measure strata "k=\$(bench_next strata); STRATA_ROOT=$W/strata $S push -q $REG/bench/push-strata:\$k"
if [[ " ${tools[*]} " == *" skopeo "* ]]; then
  measure skopeo "k=\$(bench_next skopeo); skopeo copy -q --dest-tls-verify=false oci:$W/oci-\$k:x docker://$REG/bench/push-skopeo:\$k"
fi
if [ -n "$PODMAN_CONF" ]; then
  measure podman "k=\$(bench_next podman); CONTAINERS_CONF=$PODMAN_CONF $P push -q --tls-verify=false $REG/bench/push-podman:\$k"
fi
if [ -n "$DOCKER_OK" ]; then
  # dockerd treats 127.0.0.0/8 as insecure by default.
  measure docker "k=\$(bench_next docker); $D push -q $REG/bench/push-docker:\$k"
fi

# What went over the wire for strata's first variant (compressed layer).
SIZE=$(STRATA_ROOT=$W/strata $S manifest inspect "$REG/bench/push-strata:0" |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))')
python3 - "$results" "$SIZE" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    _, tool, m = line.rstrip("\n").split("\t")
    rows[tool] = None if m == "failed" else float(m)
size = int(sys.argv[2]) / 1024 / 1024
tools = [t for t in ["strata", "skopeo", "podman", "docker"] if t in rows]
print(f"| push of a fresh 16 MiB random layer ({size:.1f} MiB gzip) | " + " | ".join(tools) + " |")
print("|---" * (len(tools) + 1) + "|")
print("| median | " + " | ".join(f"{rows[t]*1000:.0f} ms" if rows.get(t) else "failed" for t in tools) + " |")
s = rows.get("strata")
print("| time vs strata | " + " | ".join(f"{rows[t]/s:.2f}×" if rows.get(t) and s else "–" for t in tools) + " |")
PY

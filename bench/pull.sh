#!/usr/bin/env bash
# Pull from a local registry: strata pull beside skopeo copy, podman pull and
# docker pull, same images, same machine; prints markdown tables of medians
# (hyperfine) and ratios to strata.
#
#   bench/pull.sh             # RUNS=7
#   RUNS=3 bench/pull.sh
#   STRATA_BIN=/path/to/strata bench/pull.sh   # measure that binary
#
# Two images, pushed to Debian's docker-registry (CNCF distribution) on
# 127.0.0.1, in RUNS+1 variants each (tags 0..RUNS, different content), so
# that every run of every tool pulls an image no local store has:
#   debian   the Debian bookworm minbase rootfs (debootstrap, cached in
#            bench/.cache as bench/run.sh makes it) plus a file unique to the
#            run, imported by strata and pushed gzip-compressed: one layer.
#   10-layer FROM scratch with 10 COPY steps, each of a ~6 MB file of
#            distinct base64 text (random each run), built by `strata build`
#            and pushed gzip-compressed: ten layers of ~4.6 MB.
# Each run pulls the next variant (a counter file per tool), so each tool
# downloads, verifies, decompresses and stores the whole image, and nothing
# is deleted between runs: on this VM's ext4 (no journal) an inode freed less
# than a minute before is skipped by the allocator one by one
# (recently_deleted), which made any tool that pulls right after an
# `rm -rf`/`rmi` of the previous run up to 2x slower (strata debian pull:
# 0.71 s into a fresh directory, 1.47 s right after removing the last one).
#   strata   pull into a fresh --root (digests and diff IDs checked, layers
#            unpacked into the store in the same pass, blobs kept compressed)
#   strata+run  the same, then `strata run --rm IMG true` (debian only: one
#            container start on top; the unpack is already done by pull)
#   skopeo   copy to an oci: layout directory (download + verify, no unpack)
#   podman   pull into a fresh --root (overlay: download, verify, unpack)
#   docker   pull after rmi (download, verify, unpack into overlay2); the
#            running daemon, or a private one (scripts/dockerd-up.sh)
# Then one strata pull of the 10-layer image under /usr/bin/time -v: user+sys
# above elapsed means the layers were worked on in parallel; /proc/stat
# around it gives how busy the whole machine was.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
. bench/lib.sh
bench_deps
command -v hyperfine >/dev/null || { echo "bench/pull: hyperfine is not installed" >&2; exit 1; }
bench_strata
W=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-pullbench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bench_docker_down
  [ -d "$W/podman" ] && podman --root "$W/podman" --runroot "$W/podman-run" rmi -af >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

bench_debian_tar

bench_registry_up "$W"
pids+=("$REG_PID")
PORT=$REG_PORT

export DOCKER_CONFIG=$W/docker-config
mkdir -p "$DOCKER_CONFIG" && echo '{"auths":{}}' >"$DOCKER_CONFIG/config.json"

DEB=127.0.0.1:$PORT/bench/debian
TEN=127.0.0.1:$PORT/bench/ten
echo "bench/pull: pushing $((RUNS + 1)) variants of each image" >&2
for k in $(seq 0 "$RUNS"); do
  # debian: a layer no local store has yet (docker keeps layers by diff ID,
  # and other benchmarks import the same rootfs): the rootfs plus a unique file.
  cp "$CACHE/debian.tar" "$W/debian-$k.tar"
  head -c 32 /dev/urandom | od -An -tx1 >"$W/bench-stamp"
  tar -rf "$W/debian-$k.tar" -C "$W" ./bench-stamp
  STRATA_ROOT=$W/seed $S import "$W/debian-$k.tar" "$DEB:$k" >/dev/null
  STRATA_ROOT=$W/seed $S push -q "$DEB:$k" >/dev/null
  # 10-layer: ten COPY steps of distinct files.
  mkdir -p "$W/ten-$k"
  echo "FROM scratch" >"$W/ten-$k/Dockerfile"
  for i in $(seq 0 9); do
    head -c 4500000 /dev/urandom | base64 >"$W/ten-$k/part$i"
    echo "COPY part$i /data/part$i" >>"$W/ten-$k/Dockerfile"
  done
  STRATA_ROOT=$W/seed $S build -q -t "$TEN:$k" "$W/ten-$k" >/dev/null
  STRATA_ROOT=$W/seed $S push -q "$TEN:$k" >/dev/null
done

size_of() { # image -> compressed bytes of its layers
  STRATA_ROOT=$W/seed $S manifest inspect "$1" |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(len(m["layers"]), sum(l["size"] for l in m["layers"]))'
}
read -r DEB_LAYERS DEB_SIZE < <(size_of "$DEB:0")
read -r TEN_LAYERS TEN_SIZE < <(size_of "$TEN:0")
echo "bench/pull: $DEB ($DEB_LAYERS layer, $((DEB_SIZE / 1024 / 1024)) MiB) and $TEN ($TEN_LAYERS layers, $((TEN_SIZE / 1024 / 1024)) MiB), $RUNS runs each" >&2

bench_docker_up "$W/dockerd"
[ -n "$DOCKER_OK" ] || echo "bench/pull: no docker daemon: docker column skipped" >&2
PODMAN_CONF=
command -v podman >/dev/null && PODMAN_CONF=$(bash scripts/podman-env.sh "$W/podman-conf")

results=$W/results.tsv
: >"$results"
measure() { bench_measure "$1" "$2" --shell bash --runs "$RUNS" --warmup 1 "${@:3}"; }

P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay"
export -f bench_next
export W
for image in debian ten; do
  IMG=$DEB; [ $image = ten ] && IMG=$TEN
  measure $image strata "k=\$(bench_next strata-$image); STRATA_ROOT=$W/strata-$image $S pull -q $IMG:\$k"
  if [ $image = debian ]; then
    # --network none for both runs: the private dockerd has no bridge.
    measure $image strata+run "k=\$(bench_next strata+run-$image); STRATA_ROOT=$W/strata+run $S pull -q $IMG:\$k && STRATA_ROOT=$W/strata+run $S run --rm --network none $IMG:\$k true"
  fi
  if command -v skopeo >/dev/null; then
    measure $image skopeo "k=\$(bench_next skopeo-$image); skopeo copy -q --src-tls-verify=false docker://$IMG:\$k oci:$W/oci-$image-\$k:x"
  fi
  if [ -n "$PODMAN_CONF" ]; then
    measure $image podman "k=\$(bench_next podman-$image); CONTAINERS_CONF=$PODMAN_CONF $P pull -q --tls-verify=false $IMG:\$k"
  fi
  if [ -n "$DOCKER_OK" ]; then
    # dockerd treats 127.0.0.0/8 as insecure by default.
    measure $image docker "k=\$(bench_next docker-$image); $D pull -q $IMG:\$k"
    if [ $image = debian ]; then
      # docker's pull+run is its pull's median plus this (its variants are
      # all pulled by now: a second pull of one would download nothing).
      measure $image docker-run "$D run --rm --network none $IMG:0 true"
    fi
  fi
done

# Both cores at work? The 10-layer pull once more, under time -v.
# /proc/stat around it tells how busy the whole machine was (strata and the
# registry serving it share the two cores).
head -1 /proc/stat >"$W/stat.before"
/usr/bin/time -v env STRATA_ROOT="$W/strata-time" "$S" pull -q "$TEN:0" >/dev/null 2>"$W/time.txt"
head -1 /proc/stat >"$W/stat.after"
BUSY=$(python3 -c '
import os, sys
a, b = (list(map(int, open(f).read().split()[1:])) for f in sys.argv[1:3])
d = [y - x for x, y in zip(a, b)]
print("%.2f" % (os.cpu_count() * (sum(d) - d[3] - d[4]) / sum(d)))' "$W/stat.before" "$W/stat.after")
if [ -n "$DOCKER_OK" ]; then
  for k in $(seq 0 "$RUNS"); do $D rmi -f "$DEB:$k" "$TEN:$k" >/dev/null 2>&1 || true; done
fi
PAR=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} /Elapsed \(wall clock\)/ {n=split($2,a,":"); e=0; for (i=1;i<=n;i++) e=e*60+a[i]}
  END {printf "strata pull of the 10-layer image: user %.2f s + sys %.2f s = %.2f s CPU in %.2f s elapsed (%.2f cores for strata", u, s, u+s, e, (u+s)/e}' "$W/time.txt")
PAR="$PAR; the machine was $BUSY of $(nproc) cores busy, the registry included)"

python3 - "$results" "$DEB_SIZE" "$TEN_SIZE" "$PAR" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    image, tool, m = line.rstrip("\n").split("\t")
    rows.setdefault(image, {})[tool] = None if m == "failed" else float(m)
sizes = {"debian": int(sys.argv[2]), "ten": int(sys.argv[3])}
titles = {"debian": "pull of debian rootfs ({:.0f} MiB gzip, 1 layer)",
          "ten": "pull of 10-layer image ({:.0f} MiB gzip)"}
for image in ["debian", "ten"]:
    r = rows.get(image, {})
    tools = [t for t in ["strata", "strata+run", "skopeo", "podman", "docker"] if t in r]
    print("| " + titles[image].format(sizes[image] / 1024 / 1024) + " | " + " | ".join(tools) + " |")
    print("|---" * (len(tools) + 1) + "|")
    print("| median | " + " | ".join(f"{r[t]*1000:.0f} ms" if r.get(t) else "failed" for t in tools) + " |")
    s = r.get("strata")
    print("| time vs strata | " + " | ".join(f"{r[t]/s:.2f}×" if r.get(t) and s else "–" for t in tools) + " |")
    print()
    if image == "debian" and r.get("strata+run") and r.get("docker") and r.get("docker-run"):
        d = r["docker"] + r["docker-run"]
        print(f"pull+run of debian: strata {r['strata+run']*1000:.0f} ms (one command line), docker "
              f"{d*1000:.0f} ms (pull {r['docker']*1000:.0f} + run {r['docker-run']*1000:.0f}): "
              f"{r['strata+run']/d:.2f}× (goal ≤ 0.15×)")
        print()
print(sys.argv[4])
PY

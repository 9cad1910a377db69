#!/usr/bin/env bash
# strata build beside docker build (BuildKit and classic) and buildah
# (podman build, which is buildah's library, when buildah itself is not
# installed): cold and fully cached builds of
#   five:  a 5-step Dockerfile (COPY, RUN, WORKDIR, ENV, RUN) on busybox
#   multi: two independent stages copied into a third
#   work:  like multi, but each stage writes 300 files in a shell loop
#          instead of sleeping (no fixed floor under the cold build)
#   ctx10k: a 10-step Dockerfile over a 10,000-file context (cached only)
# on the busybox base (scripts/busybox-rootfs.sh), imported into each tool.
# Prints a markdown table of medians (hyperfine) and strata's ratios.
#
#   bench/build.sh          # RUNS=5
#   RUNS=3 bench/build.sh
#
# Cold = every cache of the tool cleared before each run (--prepare), the
# base image kept. RUN steps use --network none everywhere (the private
# dockerd has no bridge).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/lib.sh
bench_deps
bench_strata
W=$(mktemp -d /tmp/strata-bench-build.XXXXXX)
cleanup() {
  bench_docker_down
  [ -n "${PODMAN_ROOT:-}" ] && podman --root "$PODMAN_ROOT" --runroot "$W/podman-run" rmi -af >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
bench_docker_up "$W/dockerd"

bash scripts/busybox-rootfs.sh "$W/rootfs" >/dev/null
tar --numeric-owner -C "$W/rootfs" -cf "$W/busybox.tar" .

mkdir -p "$W/five" "$W/multi" "$W/work"
echo "app v1" >"$W/five/app.txt"
cat >"$W/five/Dockerfile" <<'EOF'
FROM busybox:latest
COPY app.txt /app/
RUN echo hello > /app/run.txt
WORKDIR /app
ENV GREETING=hi
RUN cat /app/app.txt /app/run.txt > /app/all.txt
EOF
cat >"$W/multi/Dockerfile" <<'EOF'
FROM busybox:latest AS one
RUN echo one > /one && sleep 0.2
FROM busybox:latest AS two
RUN echo two > /two && sleep 0.2
FROM busybox:latest
COPY --from=one /one /one
COPY --from=two /two /two
EOF

cat >"$W/work/Dockerfile" <<'EOF'
FROM busybox:latest AS one
RUN mkdir /one && i=0; while [ $i -lt 300 ]; do echo $i > /one/$i; i=$((i+1)); done
FROM busybox:latest AS two
RUN mkdir /two && i=0; while [ $i -lt 300 ]; do echo $i > /two/$i; i=$((i+1)); done
FROM busybox:latest
COPY --from=one /one /one
COPY --from=two /two /two
EOF
# 100 directories of 100 small files, two COPYs of halves of it.
mkdir -p "$W/ctx10k"
python3 - "$W/ctx10k" <<'PY'
import os, sys
for d in range(100):
    os.makedirs(f"{sys.argv[1]}/src/d{d:02}", exist_ok=True)
    for f in range(100):
        with open(f"{sys.argv[1]}/src/d{d:02}/f{f:02}.txt", "w") as fh:
            fh.write(f"file {d}/{f}\n")
PY
cat >"$W/ctx10k/Dockerfile" <<'EOF'
FROM busybox:latest
COPY src/d0* src/d1* src/d2* src/d3* src/d4* /a/
COPY src/d5* src/d6* src/d7* src/d8* src/d9* /b/
ENV APP=ctx
WORKDIR /a
RUN ls /a | wc -l > /count
LABEL bench=ctx10k
ENV MODE=cached
RUN cat /count
CMD ["sh"]
EOF

results=$W/results.tsv
: >"$results"
measure() { bench_measure "$1" "$2" --runs "$RUNS" "${@:3}"; }

# strata: a base store with busybox; cold runs start from a copy of it.
export STRATA_ROOT=$W/strata
$S import "$W/busybox.tar" busybox:latest >/dev/null
cp -a "$W/strata" "$W/strata-base"
for sc in five multi work ctx10k; do
  [ $sc = ctx10k ] || measure "$sc cold" strata --prepare "rm -rf $W/strata && cp -a $W/strata-base $W/strata" \
    "$S build -q --network none -t bench-$sc $W/$sc"
  $S build -q --network none -t bench-$sc "$W/$sc" >/dev/null
  measure "$sc cached" strata --warmup 1 "$S build -q --network none -t bench-$sc $W/$sc"
done

if [ -n "$DOCKER_OK" ]; then
  $D import "$W/busybox.tar" busybox:latest >/dev/null
  for mode in buildkit classic; do
    [ $mode = buildkit ] && bk=1 || bk=0
    for sc in five multi work ctx10k; do
      b="DOCKER_BUILDKIT=$bk $D build -q --network none -t bench-$sc $W/$sc"
      [ $sc = ctx10k ] || measure "$sc cold" "docker-$mode" \
        --prepare "$D rmi -f bench-$sc >/dev/null 2>&1; $D builder prune -af >/dev/null 2>&1; $D image prune -f >/dev/null 2>&1; true" "$b"
      eval "$b" >/dev/null 2>&1 || true
      measure "$sc cached" "docker-$mode" --warmup 1 "$b"
    done
  done
  $D rmi -f bench-five bench-multi bench-work bench-ctx10k >/dev/null 2>&1 || true
  $D builder prune -af >/dev/null 2>&1 || true
else
  echo "bench: no docker daemon answers (start one with scripts/dockerd-up.sh DIR): docker columns skipped" >&2
fi

# buildah: the real one when installed, else podman build (buildah's library), private store.
PODMAN_ROOT=$W/podman
P=""
if command -v buildah >/dev/null 2>&1; then
  P="buildah --root $PODMAN_ROOT --runroot $W/podman-run --storage-driver overlay"
  BUD="bud --layers --network none"
  PEER=buildah
elif command -v podman >/dev/null 2>&1; then
  P="podman --root $PODMAN_ROOT --runroot $W/podman-run --storage-driver overlay"
  BUD="build --layers --network none"
  PEER=podman-build
fi
if [ -n "$P" ] && podman --root "$PODMAN_ROOT" --runroot "$W/podman-run" --storage-driver overlay import "$W/busybox.tar" busybox:latest >/dev/null 2>&1; then
  for sc in five multi work ctx10k; do
    b="$P $BUD -q -t bench-$sc $W/$sc"
    # Cold: every image but the base removed (the layer cache is those images).
    [ $sc = ctx10k ] || measure "$sc cold" "$PEER" \
      --prepare "$P rmi -f bench-$sc >/dev/null 2>&1; $P images -q --filter dangling=true | xargs -r $P rmi -f >/dev/null 2>&1; true" "$b"
    eval "$b" >/dev/null 2>&1 || true
    measure "$sc cached" "$PEER" --warmup 1 "$b"
  done
else
  echo "bench: neither buildah nor podman can run here: buildah column skipped" >&2
  PEER=""
fi

python3 - "$results" "${PEER:-buildah}" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, tool, v = line.rstrip("\n").split("\t")
    rows.setdefault(name, {})[tool] = None if v == "failed" else float(v)
peers = ["docker-buildkit", "docker-classic", sys.argv[2]]
def ms(v):
    return "-" if v is None else ("%.0f ms" % (v * 1000) if v >= 0.1 else "%.1f ms" % (v * 1000))
def ratio(s, p):
    if s is None or p is None:
        return "-"
    return "%.1f× faster" % (p / s) if p >= s else "%.1f× slower" % (s / p)
print("| scenario | strata | " + " | ".join(peers) + " | " + " | ".join("vs " + p for p in peers) + " |")
print("|---" * (2 + 2 * len(peers)) + "|")
for name in ["five cold", "five cached", "multi cold", "multi cached", "work cold", "work cached", "ctx10k cached"]:
    r = rows.get(name, {})
    s = r.get("strata")
    print("| %s | %s | %s | %s |" % (name, ms(s), " | ".join(ms(r.get(p)) for p in peers),
                                      " | ".join(ratio(s, r.get(p)) for p in peers)))
EOF

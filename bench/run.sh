#!/usr/bin/env bash
# strata beside its peers, same jobs, same machine; prints a markdown table
# of medians (hyperfine) and strata's ratio to each peer.
#
#   bench/run.sh            # all scenarios
#   RUNS=5 bench/run.sh     # fewer runs
#
# Scenario "import/save/load": the Debian bookworm minbase rootfs
# (debootstrap, cached in bench/.cache), a 128 MB tar, imported, saved and
# loaded by strata, docker (when a daemon runs) and podman.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
. bench/lib.sh
bench_deps
bench_strata
W=$(mktemp -d /tmp/strata-bench.XXXXXX)
trap 'bench_docker_down; rm -rf "$W"' EXIT
bench_docker_up "$W/dockerd"

bench_debian_tar

results=$W/results.tsv
: >"$results"
measure() { bench_measure "$1" "$2" --runs "$RUNS" --warmup 1 "${@:3}"; }

export STRATA_ROOT=$W/strata
$S import "$TAR" bench/debian:1 >/dev/null
$S save -o "$W/strata-save.tar" bench/debian:1
measure import strata "$S import $TAR bench/debian:1"
measure save strata "$S save -o $W/s.tar bench/debian:1"
measure load strata --prepare "rm -rf $W/strata-load" "STRATA_ROOT=$W/strata-load $S load -i $W/strata-save.tar"

if [ -n "$DOCKER_OK" ]; then
  $D import "$TAR" bench/debian:1 >/dev/null
  $D save -o "$W/docker-save.tar" bench/debian:1
  measure import docker "$D import $TAR bench/debian:1"
  measure save docker "$D save -o $W/d.tar bench/debian:1"
  measure load docker --prepare "$D rmi -f bench/debian:1 >/dev/null 2>&1 || true" "$D load -i $W/docker-save.tar"
else
  echo "bench: no docker daemon running: docker columns skipped" >&2
fi
if command -v podman >/dev/null; then
  P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay"
  $P import "$TAR" bench/debian:1 >/dev/null 2>&1
  $P save -o "$W/podman-save.tar" bench/debian:1 >/dev/null 2>&1
  measure import podman "$P import $TAR bench/debian:1"
  measure save podman "rm -f $W/p.tar; $P save -o $W/p.tar bench/debian:1"
  measure load podman --prepare "$P rmi -f bench/debian:1 >/dev/null 2>&1 || true" "$P load -i $W/podman-save.tar"
  $P rmi -a -f >/dev/null 2>&1 || true
fi

python3 - "$results" <<'PY'
import sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, tool, m = line.rstrip("\n").split("\t")
    rows.setdefault(name, {})[tool] = None if m == "failed" else float(m)
tools = ["strata", "docker", "podman"]
print("| scenario | " + " | ".join(tools) + " | strata vs " + " | strata vs ".join(tools[1:]) + " |")
print("|---" * (len(tools) * 2) + "|")
for name, r in rows.items():
    cells = [f"{r[t]*1000:.0f} ms" if r.get(t) else "–" for t in tools]
    def ratio(t):
        if not (r.get(t) and r.get("strata")):
            return "–"
        x = r[t] / r["strata"]
        return f"{x:.1f}× faster" if x >= 1 else f"{1 / x:.1f}× slower"
    ratios = [ratio(t) for t in tools[1:]]
    print(f"| {name} (debian rootfs) | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
PY

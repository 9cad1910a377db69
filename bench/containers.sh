#!/usr/bin/env bash
# Container start-to-exit latency: `run --rm busybox true`, a run that
# writes 1,000 files, and `run -d -p` then `rm -f` (strata only, see below;
# against docker: bench/publish.sh),
# strata beside docker and podman on the same busybox
# rootfs (from Debian's busybox-static). Prints a markdown table of medians.
#
#   bench/containers.sh          RUNS=20 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
. bench/lib.sh
bench_deps >/dev/null
bench_strata
W=$(mktemp -d /tmp/strata-bench-ctr.XXXXXX)
trap 'bench_docker_down; umount -R "$W"/podman/overlay 2>/dev/null || true; rm -rf "$W"' EXIT
bench_docker_up "$W/dockerd"
scripts/busybox-rootfs.sh "$W/rootfs" >/dev/null
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
export STRATA_ROOT=$W/strata
$S import -c 'CMD ["/bin/sh"]' "$W/rootfs.tar" bench/busybox >/dev/null
results=$W/results.tsv
: >"$results"
measure() { bench_measure "$1" "$2" -N --runs "$RUNS" --warmup 2 "$3"; }
WRITE='sh -c "for i in \$(seq 1000); do echo \$i > /tmp/f\$i; done"'
measure "run true" strata "$S run --rm bench/busybox true"
measure "run, 1000 files" strata "$S run --rm bench/busybox $WRITE"
# A published container's start (namespace, veth, address, nft DNAT) and
# removal, beside the same on the host's network. The private dockerd
# runs without a bridge (--bridge=none --iptables=false), so docker cannot
# publish a port there: this line is strata's own comparison; docker's
# column is bench/publish.sh (a private dockerd with a bridge of its own).
measure "run -d -p 80, rm -f" strata "bash -c 'id=\$($S run -d -p 80 bench/busybox sleep 60) && $S rm -f \$id >/dev/null'"
measure "run -d --network host, rm -f" strata "bash -c 'id=\$($S run -d --network host bench/busybox sleep 60) && $S rm -f \$id >/dev/null'"
if [ -n "$DOCKER_OK" ]; then
  $D import "$W/rootfs.tar" bench/busybox >/dev/null
  measure "run true" docker "$D run --rm --network none bench/busybox true"
  measure "run, 1000 files" docker "$D run --rm --network none bench/busybox $WRITE"
else
  echo "bench: no docker daemon running: docker skipped" >&2
fi
if command -v podman >/dev/null; then
  export CONTAINERS_CONF; CONTAINERS_CONF=$(scripts/podman-env.sh "$W/podman-conf")
  P="podman --root $W/podman --runroot $W/podman-run"
  $P import "$W/rootfs.tar" bench/busybox >/dev/null 2>&1
  measure "run true" podman "$P run --rm --network none bench/busybox true"
  measure "run, 1000 files" podman "$P run --rm --network none bench/busybox $WRITE"
fi
python3 - "$results" <<'PY'
import sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, tool, m = line.rstrip("\n").split("\t")
    rows.setdefault(name, {})[tool] = None if m == "failed" else float(m)
tools = ["strata", "docker", "podman"]
print("| scenario | " + " | ".join(tools) + " | strata vs docker | strata vs podman |")
print("|---" * 6 + "|")
for name, r in rows.items():
    cells = [f"{r[t]*1000:.0f} ms" if r.get(t) else "–" for t in tools]
    def ratio(t):
        if not (r.get(t) and r.get("strata")):
            return "–"
        x = r[t] / r["strata"]
        return f"{x:.1f}× faster" if x >= 1 else f"{1 / x:.1f}× slower"
    print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratio(t) for t in tools[1:]) + " |")
PY

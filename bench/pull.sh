#!/usr/bin/env bash
# Pull from a local registry: strata pull beside skopeo copy, podman pull and
# docker pull (when a daemon runs), same image, same machine; prints a
# markdown table of medians (hyperfine).
#
#   bench/pull.sh             # RUNS=7
#   RUNS=3 bench/pull.sh
#
# The image: the Debian bookworm minbase rootfs (debootstrap, cached in
# bench/.cache as bench/run.sh makes it), imported by strata and pushed
# (gzip) to Debian's docker-registry (CNCF distribution) on 127.0.0.1. Every
# run starts from an empty store, so each tool downloads, verifies,
# decompresses and stores the whole image:
#   strata   pull into a fresh --root (layers verified, diff IDs checked,
#            blobs kept compressed; unpacked later, when a container needs them)
#   strata+run  the same, then `strata run --rm IMG true` (unpack + one container)
#   skopeo   copy to an oci: layout directory (download + verify, no unpack)
#   podman   pull into a fresh --root (vfs: download, verify, unpack)
#   docker   pull after rmi (download, verify, unpack into overlay2)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
CACHE=bench/.cache
mkdir -p "$CACHE"
DREG=/usr/bin/docker-registry
[ -x $DREG ] || { echo "bench/pull: $DREG is not installed (apt-get install docker-registry)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench/pull: hyperfine is not installed" >&2; exit 1; }
cargo build --release --quiet -p strata-cli
S=$PWD/target/release/strata
W=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-pullbench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

if [ ! -s "$CACHE/debian.tar" ]; then
  echo "bench/pull: debootstrap bookworm minbase (once, cached in $CACHE)" >&2
  rm -rf "$CACHE/rootfs"
  debootstrap --variant=minbase bookworm "$CACHE/rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1
  rm -rf "$CACHE"/rootfs/var/cache/apt/* "$CACHE"/rootfs/var/lib/apt/lists/* "$CACHE"/rootfs/var/log/*
  tar --numeric-owner --sort=name -C "$CACHE/rootfs" -cf "$CACHE/debian.tar" .
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$W/distribution.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  cache: { blobdescriptor: inmemory }
  filesystem: { rootdirectory: "$W/registry" }
http: { addr: "127.0.0.1:$PORT" }
EOF
$DREG serve "$W/distribution.yml" >"$W/registry.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null || { echo "bench/pull: the registry does not answer" >&2; cat "$W/registry.log" >&2; exit 1; }

IMG=127.0.0.1:$PORT/bench/debian:1
export DOCKER_CONFIG=$W/docker-config
mkdir -p "$DOCKER_CONFIG" && echo '{"auths":{}}' >"$DOCKER_CONFIG/config.json"
# A layer no local store has yet (docker keeps layers by diff ID, and other
# benchmarks import the same rootfs): the rootfs plus a file unique to this run.
cp "$CACHE/debian.tar" "$W/debian.tar"
head -c 32 /dev/urandom | od -An -tx1 >"$W/bench-stamp"
tar -rf "$W/debian.tar" -C "$W" ./bench-stamp
STRATA_ROOT=$W/seed $S import "$W/debian.tar" "$IMG" >/dev/null
STRATA_ROOT=$W/seed $S push -q "$IMG" >/dev/null
SIZE=$(STRATA_ROOT=$W/seed $S manifest inspect "$IMG" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))')
echo "bench/pull: $IMG, $((SIZE / 1024 / 1024)) MiB compressed, $RUNS runs each" >&2

results=$W/results.tsv
: >"$results"
measure() { # tool hyperfine-args...
  local tool=$1; shift
  local json=$W/$tool.json
  if hyperfine --style none --runs "$RUNS" --warmup 1 --export-json "$json" "$@" >"$W/$tool.log" 2>&1; then
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['median'])" "$json" |
      { read -r m; printf '%s\t%s\n' "$tool" "$m" >>"$results"; }
  else
    echo "bench/pull: $tool failed:" >&2; tail -5 "$W/$tool.log" >&2
    printf '%s\t%s\n' "$tool" "failed" >>"$results"
  fi
}

measure strata --prepare "rm -rf $W/strata" "STRATA_ROOT=$W/strata $S pull -q $IMG"
# strata unpacks layers when a container first needs them; this column adds
# that (and one container start) to compare with the tools that unpack at pull.
measure strata+run --prepare "rm -rf $W/strata" "STRATA_ROOT=$W/strata $S pull -q $IMG && STRATA_ROOT=$W/strata $S run --rm $IMG true"
if command -v skopeo >/dev/null; then
  measure skopeo --prepare "rm -rf $W/oci" "skopeo copy -q --src-tls-verify=false docker://$IMG oci:$W/oci:x"
fi
if command -v podman >/dev/null; then
  P="podman --root $W/podman --runroot $W/podman-run --storage-driver vfs"
  measure podman --prepare "$P rmi -a -f >/dev/null 2>&1 || true; rm -rf $W/podman" "$P pull -q --tls-verify=false $IMG"
fi
D=$(command -v docker || true)
if [ -n "$D" ] && $D info >/dev/null 2>&1; then
  # dockerd treats 127.0.0.0/8 as insecure by default.
  measure docker --prepare "$D rmi -f $IMG >/dev/null 2>&1 || true" "$D pull -q $IMG"
  $D rmi -f "$IMG" >/dev/null 2>&1 || true
else
  echo "bench/pull: no docker daemon running: docker column skipped" >&2
fi

python3 - "$results" "$SIZE" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    tool, m = line.rstrip("\n").split("\t")
    rows[tool] = None if m == "failed" else float(m)
size = int(sys.argv[2]) / 1024 / 1024
tools = [t for t in ["strata", "strata+run", "skopeo", "podman", "docker"] if t in rows]
print(f"| pull of debian rootfs ({size:.0f} MiB gzip) | " + " | ".join(tools) + " |")
print("|---" * (len(tools) + 1) + "|")
cells = [f"{rows[t]*1000:.0f} ms" if rows.get(t) else "failed" for t in tools]
print("| median | " + " | ".join(cells) + " |")
s = rows.get("strata")
ratios = [f"{rows[t]/s:.2f}×" if rows.get(t) and s else "–" for t in tools]
print("| time vs strata | " + " | ".join(ratios) + " |")
PY

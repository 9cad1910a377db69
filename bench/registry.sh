#!/usr/bin/env bash
# strata-registry beside Debian's docker-registry (CNCF distribution 2.8), on
# this machine, under the same load; prints a markdown table.
#
#   bench/registry.sh                  # defaults below
#   DUR=5 BENCH_DIR=/dev/shm bench/registry.sh
#
# Both serve the filesystem (a temporary directory under $BENCH_DIR, default
# /tmp), plain HTTP on 127.0.0.1, access logs off. Scenarios, one server at a
# time while the other idles, $REPS rounds, medians reported:
#   manifest GET   wrk, $CONN connections, GET of a small image's manifest by tag
#   blob GET       wrk, $BLOB_CONN connections, GET of a $BLOB_MIB MiB blob
#   pushes         $WORKERS concurrent pushers, $PER unique images each (config
#                  + $LAYER_BYTES layer + manifest; HEAD/POST/PATCH/PUT as
#                  clients do), by bench/registry-load.rs
#   peak RSS       VmHWM of the server process after all of the above
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
CONN=${CONN:-32}
BLOB_CONN=${BLOB_CONN:-4}
BLOB_MIB=${BLOB_MIB:-64}
WORKERS=${WORKERS:-100}
PER=${PER:-5}
LAYER_BYTES=${LAYER_BYTES:-16384}
REPS=${REPS:-3}

. bench/lib.sh
bench_deps
command -v wrk >/dev/null || { echo "bench/registry: wrk is not installed" >&2; exit 1; }
DREG=/usr/bin/docker-registry
[ -x $DREG ] || { echo "bench/registry: $DREG is not installed (apt-get install docker-registry)" >&2; exit 1; }
cargo build --release --quiet -p strata-registry-server --bins --examples
S=$PWD/target/release/strata-registry
LOAD=$PWD/target/release/examples/registry-load

W=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-regbench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  rm -rf "$W"
}
trap cleanup EXIT

PS=$(bench_free_port)
PD=$(bench_free_port)
cat >"$W/strata.yml" <<EOF
http: { addr: "127.0.0.1:$PS" }
storage: { filesystem: { rootdirectory: "$W/strata" } }
log: { accesslog: { disabled: true } }
EOF
# Debian's /etc/docker/registry/config.yml, less auth and on our port.
cat >"$W/distribution.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  cache: { blobdescriptor: inmemory }
  filesystem: { rootdirectory: "$W/distribution" }
  delete: { enabled: true }
http: { addr: "127.0.0.1:$PD" }
EOF

"$S" serve -c "$W/strata.yml" >"$W/strata.log" 2>&1 &
SPID=$!
pids+=("$SPID")
$DREG serve "$W/distribution.yml" >"$W/distribution.log" 2>&1 &
DPID=$!
pids+=("$DPID")
for url in "http://127.0.0.1:$PS" "http://127.0.0.1:$PD"; do
  for _ in $(seq 100); do curl -sf "$url/v2/" >/dev/null && break; sleep 0.1; done
  curl -sf "$url/v2/" >/dev/null || { echo "bench/registry: $url does not answer" >&2; tail "$W"/*.log >&2; exit 1; }
done

# wrk's "Requests/sec" or "Transfer/sec" (in MB/s), failing on non-2xx answers.
wrk_metric() { # what url [wrk args...]
  local what=$1 url=$2; shift 2
  local out
  out=$(wrk -t2 -d"${DUR}s" --latency "$@" "$url")
  if grep -q 'Non-2xx' <<<"$out"; then echo "bench/registry: non-2xx answers from $url:" >&2; echo "$out" >&2; exit 1; fi
  case $what in
    rps) awk '/^Requests\/sec:/ {print $2}' <<<"$out" ;;
    mbps) awk '/^Transfer\/sec:/ {v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[A-Za-z]+$/,"",v);
             m=(u=="GB")?1024:(u=="MB")?1:(u=="KB")?1/1024:1/1048576; printf "%.1f\n", v*m}' <<<"$out" ;;
  esac
}

url_of() { if [ "$1" = strata ]; then echo "http://127.0.0.1:$PS"; else echo "http://127.0.0.1:$PD"; fi; }
declare -A R BLOB
for srv in strata distribution; do
  echo "bench/registry: $srv: setup" >&2
  BLOB[$srv]=$("$LOAD" setup "$(url_of $srv)" "$BLOB_MIB")
done
acc="Accept: application/vnd.docker.distribution.manifest.v2+json"
# REPS rounds; each scenario runs on both servers back to back, the first
# one alternating, so that other load on the machine hits both alike.
for rep in $(seq "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then order="strata distribution"; else order="distribution strata"; fi
  for srv in $order; do
    url=$(url_of $srv)
    echo "bench/registry: round $rep/$REPS: $srv: manifest GET" >&2
    [ "$rep" = 1 ] && wrk -t2 -c"$CONN" -d2s -H "$acc" "$url/v2/bench/small/manifests/latest" >/dev/null # warm-up
    R[$srv.manifest]+=" $(wrk_metric rps "$url/v2/bench/small/manifests/latest" -c"$CONN" -H "$acc")"
  done
  for srv in $order; do
    url=$(url_of $srv)
    echo "bench/registry: round $rep/$REPS: $srv: blob GET" >&2
    [ "$rep" = 1 ] && wrk -t2 -c"$BLOB_CONN" -d2s "$url/v2/bench/big/blobs/${BLOB[$srv]}" >/dev/null
    R[$srv.blob]+=" $(wrk_metric mbps "$url/v2/bench/big/blobs/${BLOB[$srv]}" -c"$BLOB_CONN")"
  done
  for srv in $order; do
    echo "bench/registry: round $rep/$REPS: $srv: $WORKERS concurrent pushers x $PER images" >&2
    R[$srv.push]+=" $("$LOAD" push "$(url_of $srv)" "$WORKERS" "$PER" "$LAYER_BYTES" | awk '{print $3}')"
  done
done
median() { python3 -c "import sys, statistics; print(round(statistics.median(map(float, sys.argv[1:])), 1))" $1; }
for k in "${!R[@]}"; do
  echo "bench/registry: $k:${R[$k]}" >&2
  R[$k]=$(median "${R[$k]}")
done
for srv in strata distribution; do
  if [ $srv = strata ]; then pid=$SPID; else pid=$DPID; fi
  R[$srv.rss]=$(awk '/^VmHWM:/ {printf "%.1f\n", $2/1024}' "/proc/$pid/status")
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}x' if b else '-')" "$1" "$2"; }
echo
echo "$(date -u +%Y-%m-%d) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); storage in ${BENCH_DIR:-/tmp}" \
  "($(df -T "$W" | awk 'NR==2 {print $2}')); $($DREG --version | awk '{print $2, $3}'); medians of $REPS rounds, wrk ${DUR}s runs; load average after: $load_after"
echo
echo "| scenario | strata | distribution | ratio |"
echo "|---|---|---|---|"
printf '| manifest GET by tag, req/s (%s conns) | %s | %s | %s |\n' "$CONN" "${R[strata.manifest]}" "${R[distribution.manifest]}" "$(ratio "${R[strata.manifest]}" "${R[distribution.manifest]}")"
printf '| blob GET %s MiB, MB/s (%s conns) | %s | %s | %s |\n' "$BLOB_MIB" "$BLOB_CONN" "${R[strata.blob]}" "${R[distribution.blob]}" "$(ratio "${R[strata.blob]}" "${R[distribution.blob]}")"
printf '| pushes, images/s (%s concurrent, %s images, %s B layers) | %s | %s | %s |\n' "$WORKERS" "$((WORKERS * PER))" "$LAYER_BYTES" "${R[strata.push]}" "${R[distribution.push]}" "$(ratio "${R[strata.push]}" "${R[distribution.push]}")"
printf '| peak RSS, MiB (lower is better) | %s | %s | %s |\n' "${R[strata.rss]}" "${R[distribution.rss]}" "$(ratio "${R[strata.rss]}" "${R[distribution.rss]}")"

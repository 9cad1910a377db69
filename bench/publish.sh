#!/usr/bin/env bash
# A published container's start (#18): `run -d -p HOSTPORT:80 IMG httpd -f
# -p 80`, strata beside docker, on the same busybox image (Debian's
# busybox-static plus an /index.html), both stores on one tmpfs. Three
# scenarios, each a hyperfine median:
#   start        `run -d -p` until the command returns (container started)
#   start+http   the same, then `curl 127.0.0.1:HOSTPORT` until it answers
#                200 (one curl after another, no sleep)
#   rm -f        `rm -f` of that running, published container
# A fixed container name; hyperfine's --prepare removes (or, for rm -f,
# starts) it outside the timing.
#
# docker is a private dockerd of its own (not scripts/dockerd-up.sh's, which
# has no bridge and so cannot publish): its own --data-root (on the tmpfs),
# --exec-root, --pidfile and unix socket under the work directory
# (DOCKER_HOST), on a bridge this script makes (its own name, a free
# 172.31.X.0/24), with --iptables=false --ip-forward=false --ip-masq=false so
# that it writes no iptables/nft rule and no sysctl (docker's FORWARD DROP
# rules would cut strata's own bridges on this host, where br_netfilter
# makes bridged traffic go through iptables): docker publishes with its
# userland proxy (docker-proxy), the default's path for connections to
# 127.0.0.1 anyway. strata publishes with nft DNAT in its `inet strata`
# table (host-wide state, as any strata run as root).
#
# Everything is torn down at the end (containers, dockerd, the bridge, the
# tmpfs) and the host's `nft list ruleset`, `iptables -S` (filter and nat),
# `ip6tables -S`, links, network namespaces and routes are compared with
# what they were before: any difference is printed and the script exits 1.
# (Another strata user on the host at the same time changes strata's table
# too: run it again when the machine is otherwise idle of containers.)
#
#   bench/publish.sh            RUNS=10 by default; BENCH_TMPFS=0: no tmpfs
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench: publish.sh needs root (bridges, nft, dockerd)" >&2; exit 1; }
bench_deps >/dev/null
for t in nft iptables ip curl hyperfine python3; do
  command -v $t >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
bench_strata

N=strata-bench-publish
snapshot() {
  echo "## iptables -S"; iptables -S
  echo "## iptables -t nat -S"; iptables -t nat -S
  echo "## ip6tables -S"; ip6tables -S 2>/dev/null || true
  echo "## nft list ruleset"; nft list ruleset
  echo "## links"; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
  echo "## netns"; ip netns list | sort
  echo "## routes"; ip -4 route show table all | sed 's/ linkdown//' | sort
}
W=$(mktemp -d /tmp/strata-bench-pub.XXXXXX)
snapshot >"$W.before"

BR=
DPID=
cleanup() {
  local rc=$? left=0
  set +e
  if [ -n "${S:-}" ] && [ -d "$W/strata" ]; then
    STRATA_ROOT=$W/strata $S rm -f $N >/dev/null 2>&1
  fi
  if [ -n "$DPID" ]; then
    $D rm -f $N >/dev/null 2>&1
    kill "$DPID" 2>/dev/null
    for _ in $(seq 200); do [ -d "/proc/$DPID" ] || break; sleep 0.1; done
    if [ -d "/proc/$DPID" ]; then
      echo "bench: LEFT OVER: dockerd $DPID did not stop within 20 s (log: $W/docker/dockerd.log)" >&2
      left=1
    fi
  fi
  if [ -n "$BR" ]; then
    ip link del "$BR" 2>/dev/null
  fi
  if grep -q " $W" /proc/mounts; then
    umount -R "$W" || { echo "bench: LEFT OVER: mounts under $W" >&2; grep " $W" /proc/mounts >&2; left=1; }
  fi
  if [ "$left" = 0 ]; then rm -rf "$W"; fi
  if [ -n "$(pgrep -f "$W" || true)" ]; then
    echo "bench: LEFT OVER: processes of $W:" >&2
    ps -o pid,args -p "$(pgrep -d, -f "$W")" >&2
    left=1
  fi
  snapshot >"$W.after"
  if ! diff -u "$W.before" "$W.after" >"$W.diff"; then
    echo "bench: LEFT OVER: the host's rules, links, namespaces or routes differ from before the bench:" >&2
    cat "$W.diff" >&2
    left=1
  fi
  rm -f "$W.before" "$W.after" "$W.diff"
  if [ "$left" != 0 ]; then
    echo "bench: FAILED: something was left behind (see above)" >&2
    exit 1
  fi
  exit "$rc"
}
trap cleanup EXIT

if [ "${BENCH_TMPFS:-1}" != 0 ]; then
  mount -t tmpfs -o size=4g,mode=0700 strata-bench-publish "$W"
fi
scripts/busybox-rootfs.sh "$W/rootfs" >/dev/null
echo hello >"$W/rootfs/index.html"
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
export STRATA_ROOT=$W/strata
$S import -c 'CMD ["/bin/sh"]' "$W/rootfs.tar" bench/busybox >/dev/null

# docker's bridge: a name and a /24 of 172.31.0.0/16 that nothing on the
# host uses (strata's networks are 10.X.0.0/16).
if command -v dockerd >/dev/null && [ -x $D ] && { [ -x /usr/sbin/docker-proxy ] || command -v docker-proxy >/dev/null; }; then
  SUBNET=$(ip -4 route show table all | python3 -c '
import ipaddress, re, sys
used = []
for line in sys.stdin:
    for w in line.split()[:2]:
        try:
            used.append(ipaddress.ip_network(w, strict=False))
        except ValueError:
            pass
for x in range(254, 0, -1):
    n = ipaddress.ip_network(f"172.31.{x}.0/24")
    if not any(n.overlaps(u) for u in used):
        print(n)
        break
')
  [ -n "$SUBNET" ] || { echo "bench: no free 172.31.X.0/24 for docker's bridge" >&2; exit 1; }
  BR=sbpub$$
  BR=${BR:0:15}
  ip link add "$BR" type bridge
  ip addr add "${SUBNET%.0/24}.1/24" dev "$BR"
  ip link set "$BR" up
  mkdir -p "$W/docker"
  setsid dockerd --host="unix://$W/docker/docker.sock" --storage-driver=overlay2 \
    --iptables=false --ip-forward=false --ip-masq=false --bridge="$BR" \
    --data-root="$W/docker/data" --exec-root="$W/docker/exec" --pidfile="$W/docker/dockerd.pid" \
    >"$W/docker/dockerd.log" 2>&1 </dev/null &
  DPID=$!
  export DOCKER_HOST=unix://$W/docker/docker.sock
  for _ in $(seq 120); do $D info >/dev/null 2>&1 && break; sleep 0.5; done
  if $D info >/dev/null 2>&1; then
    DOCKER_OK=1
    DPID=$(cat "$W/docker/dockerd.pid")
    $D import "$W/rootfs.tar" bench/busybox >/dev/null
  else
    echo "bench: the private dockerd did not start: docker skipped. Last log lines:" >&2
    tail -5 "$W/docker/dockerd.log" >&2
  fi
else
  echo "bench: docker.io (dockerd, docker-proxy) not installed: docker skipped" >&2
fi

results=$W/results.tsv
: >"$results"
# The wait for an answer: one curl after another until a 200 (at most ~3,000
# tries, so a container that never answers fails the run instead of hanging).
wait_http() { echo "for i in {1..3000}; do curl -sf -o /dev/null --max-time 2 http://127.0.0.1:$1/ && exit 0; done; exit 1"; }
# Each tool's port checked once by hand first, so a broken setup says why.
check() { # tool CLI port
  if ! bash -c "$2 run -d --name $N -p $3:80 bench/busybox httpd -f -p 80 >/dev/null && $(wait_http "$3")"; then
    echo "bench: $1's published port 127.0.0.1:$3 does not answer" >&2
    bash -c "$2 rm -f $N" >/dev/null 2>&1 || true
    return 1
  fi
  bash -c "$2 rm -f $N >/dev/null"
}
TOOLS=(strata)
declare -A CLI PORT
CLI[strata]=$S
PORT[strata]=$(bench_free_port)
if [ -n "$DOCKER_OK" ]; then
  TOOLS+=(docker)
  CLI[docker]=$D
  PORT[docker]=$(bench_free_port)
fi
for t in "${TOOLS[@]}"; do check "$t" "${CLI[$t]}" "${PORT[$t]}"; done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# One scenario at a time, strata then docker, so that a change in the
# machine's load hits both columns of a row alike.
m=(-S bash --runs "$RUNS" --warmup 2)
for sc in start http rm; do
  for t in "${TOOLS[@]}"; do
    c=${CLI[$t]} p=${PORT[$t]}
    run="$c run -d --name $N -p $p:80 bench/busybox httpd -f -p 80 >/dev/null"
    rm="$c rm -f $N >/dev/null 2>&1 || true"
    case $sc in
      start) bench_measure "start (run -d -p returns)" "$t" "${m[@]}" --prepare "$rm" "$run" ;;
      http) bench_measure "start until curl answers" "$t" "${m[@]}" --prepare "$rm" "$run && $(wait_http "$p")" ;;
      rm) bench_measure "rm -f (running, published)" "$t" "${m[@]}" --prepare "$rm; $run && $(wait_http "$p")" "$c rm -f $N >/dev/null" ;;
    esac
    bash -c "$rm"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$results" "$W" <<'PY'
import collections, json, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, tool, m = line.rstrip("\n").split("\t")
    rows.setdefault(name, {})[tool] = None if m == "failed" else float(m)
print("| scenario | strata | docker | docker ÷ strata |")
print("|---|---|---|---|")
cell = lambda x: f"{x * 1000:.0f} ms" if x else "–"
for name, r in rows.items():
    s, d = r.get("strata"), r.get("docker")
    if s and d:
        x = d / s
        ratio = f"{x:.2f} (strata {x:.1f}× faster)" if x >= 1 else f"{x:.2f} (strata {1 / x:.1f}× slower)"
    else:
        ratio = "–"
    print(f"| {name} | {cell(s)} | {cell(d)} | {ratio} |")
print()
for name, r in rows.items():
    spread = []
    for tool in r:
        try:
            t = json.load(open(f"{sys.argv[2]}/{name}-{tool}.json"))["results"][0]["times"]
            spread.append(f"{tool} {min(t) * 1000:.0f}–{max(t) * 1000:.0f} ms")
        except (OSError, KeyError, IndexError, ValueError):
            pass
    print(f"- {name}: min–max " + ", ".join(spread))
PY
echo
echo "RUNS=$RUNS (warmup 2), $(date -u +%F), $(nproc) cores, load average $LOAD_BEFORE before / $LOAD_AFTER after," \
  "store on $(stat -f -c %T "$W"), $("$S" --version 2>/dev/null | head -1)${DOCKER_OK:+, docker $($D version -f '{{.Server.Version}}' 2>/dev/null)}"

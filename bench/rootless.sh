#!/usr/bin/env bash
# Rootless strata beside rootless podman (#19): the same ordinary user (one
# with a subordinate range, made as the tests make it: strata-tsub), the same
# busybox image (Debian's busybox-static), both stores on one tmpfs owned by
# that user. Scenarios, each a hyperfine median, run by hyperfine as the
# user (no runuser/sudo in the timed command):
#   run true, --network none   `run --rm --network none IMG true`
#   run true, default network  `run --rm IMG true` (strata's rootless default;
#                              podman 4.3's rootless default, slirp4netns)
#   cached rebuild             `build` of a 5-step Dockerfile (COPY, RUN,
#                              WORKDIR, ENV, RUN) built once before, every
#                              step cached (podman: `build --layers`)
# and strata as root on the same jobs but the default network (a bridge and
# nft rules of the host's: not this bench's business), a store of its own on
# the tmpfs, for what rootless costs strata itself. Per scenario the tools
# run one after the other.
#
# podman: Debian's 4.3 with crun, `--root/--runroot` on the tmpfs (the runroot
# under 50 characters: podman's overlay refuses longer ones),
# `--storage-driver overlay` (native rootless overlay; vfs when that fails),
# `--cgroup-manager cgroupfs --events-backend file`, CONTAINERS_CONF from
# scripts/podman-env.sh (this host's cgroup and rlimit quirks).
# At the end the pause processes of both (and anything left in their user
# namespaces) are killed by pid, the tmpfs unmounted and removed.
#
#   bench/rootless.sh            RUNS=20 by default; BENCH_TMPFS=0: no tmpfs
#   STRATA_BIN=/path/to/strata bench/rootless.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
. bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench: rootless.sh needs root (it makes the user and the tmpfs)" >&2; exit 1; }
bash scripts/deps.d/rootless.sh >&2
for t in hyperfine python3 setpriv useradd usermod newuidmap; do
  command -v $t >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
bench_strata

# The user, as tests/common/rootless.rs makes it: a range of 65,536 ids
# after everyone else's when useradd gave it none.
U=strata-tsub
if ! getent passwd $U >/dev/null; then
  useradd -m -s /bin/sh -c "strata rootless tests" $U
fi
for f in subuid subgid; do
  if ! grep -qE "^($U|$(id -u $U)):[0-9]+:[1-9]" /etc/$f; then
    start=$(awk -F: 'BEGIN{m=100000} NF==3{e=$2+$3; if(e>m)m=e} END{print m}' /etc/$f)
    usermod "--add-${f}s" "$start-$((start + 65535))" $U
  fi
done
UID_=$(id -u $U)
GID_=$(id -g $U)

W=$(mktemp -d /tmp/strata-bench-rootless.XXXXXX)
cleanup() {
  local rc=$? pids=() ns=() p n
  set +e
  # The pause processes (strata's pid file says "PID STARTTIME", podman's
  # "PID"), then every process in their user namespaces, by pid.
  for f in "$W"/data/strata/rootless.pid "$W"/run/libpod/tmp/pause.pid; do
    [ -s "$f" ] || continue
    p=$(cut -d' ' -f1 "$f")
    [ "$(stat -c %u "/proc/$p" 2>/dev/null)" = "$UID_" ] || continue
    pids+=("$p")
    ns+=("$(readlink "/proc/$p/ns/user")")
  done
  for n in "${ns[@]}"; do
    for d in /proc/[0-9]*; do
      [ "$(readlink "$d/ns/user" 2>/dev/null)" = "$n" ] && kill -9 "${d#/proc/}" 2>/dev/null
    done
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    left=0
    for p in "${pids[@]}"; do
      [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && left=1
    done
    [ $left = 0 ] && break
    sleep 0.05
  done
  mountpoint -q "$W" && { umount "$W" || umount -l "$W"; }
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT
if [ "${BENCH_TMPFS:-1}" != 0 ]; then
  mount -t tmpfs -o size=4g,mode=0700 strata-bench-rootless "$W"
fi
mkdir -p "$W"/{home,run,data,tmp,bin,ctx}
cp "$S" "$W/bin/strata"
chmod 0755 "$W/bin/strata"
RS=$W/bin/strata
scripts/busybox-rootfs.sh "$W/rootfs" >/dev/null
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$W/rootfs" -cf "$W/busybox.tar" .
rm -rf "$W/rootfs"
echo "app v1" >"$W/ctx/app.txt"
cat >"$W/ctx/Dockerfile" <<'EOF'
FROM docker.io/library/busybox:latest
COPY app.txt /app/
RUN echo hello > /app/run.txt
WORKDIR /app
ENV GREETING=hi
RUN cat /app/app.txt /app/run.txt > /app/all.txt
EOF
CONF=$(scripts/podman-env.sh "$W/podman-conf")
chown -R "$UID_:$GID_" "$W"
chmod 0700 "$W" "$W"/{home,run,data,tmp}

# As the user: a clean environment of the work directory's paths.
AS_USER=(setpriv "--reuid=$UID_" "--regid=$GID_" --clear-groups
  env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "HOME=$W/home" "USER=$U" "LOGNAME=$U"
  "XDG_RUNTIME_DIR=$W/run" "XDG_DATA_HOME=$W/data" "XDG_CONFIG_HOME=$W/home/.config" "TMPDIR=$W/tmp"
  "CONTAINERS_CONF=$CONF")
as_user() { (cd "$W/home" && "${AS_USER[@]}" "$@"); }

results=$W/results.tsv
: >"$results"
# One measurement as the user (hyperfine itself runs as the user) or as root.
measure_user() { (hyperfine() { as_user /usr/bin/hyperfine "$@"; } && bench_measure "$1" "$2" -N --runs "$RUNS" --warmup 2 "$3"); }
measure_root() { (export STRATA_ROOT=$ROOT_STORE && bench_measure "$1" "$2" -N --runs "$RUNS" --warmup 2 "$3"); }
CHANGES=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/sh"]')

# strata, rootless, and as root (a store of its own on the tmpfs).
as_user "$RS" import "${CHANGES[@]}" "$W/busybox.tar" busybox:latest >/dev/null
as_user "$RS" build -q --network none -t bench/small "$W/ctx" >/dev/null
ROOT_STORE=$W/root-store
STRATA_ROOT=$ROOT_STORE $RS import "${CHANGES[@]}" "$W/busybox.tar" busybox:latest >/dev/null
STRATA_ROOT=$ROOT_STORE $RS build -q --network none -t bench/small "$W/ctx" >/dev/null

# podman, rootless, as the same user.
PD=
if command -v podman >/dev/null; then
  for drv in overlay vfs; do
    P="podman --root $W/home/podman-$drv --runroot $W/run/p-$drv --storage-driver $drv --cgroup-manager cgroupfs --events-backend file"
    if as_user $P import -q "${CHANGES[@]}" "$W/busybox.tar" docker.io/library/busybox:latest >"$W/podman-$drv.log" 2>&1 &&
      as_user $P run --rm --network none busybox true >>"$W/podman-$drv.log" 2>&1; then
      PD=$drv
      break
    fi
    echo "bench: rootless podman with $drv does not run:" >&2
    tail -3 "$W/podman-$drv.log" >&2
  done
  if [ -n "$PD" ]; then
    echo "bench: podman: CONTAINERS_CONF=$CONF $P" >&2
    as_user $P build -q --layers --network none --pull=never -t bench/small "$W/ctx" >/dev/null 2>&1
  fi
else
  echo "bench: podman is not installed: its column is skipped" >&2
fi

# Per scenario the three one after the other (a busy machine then slows
# one scenario for all three rather than one tool for all scenarios).
# strata as root not on the default network: that is the host's bridge and
# nft rules, not this bench's business.
measure_user "run true, --network none" strata "$RS run --rm --network none busybox true"
[ -n "$PD" ] && measure_user "run true, --network none" podman "$P run --rm --network none busybox true"
measure_root "run true, --network none" strata-root "$RS run --rm --network none busybox true"
measure_user "run true, default network" strata "$RS run --rm busybox true"
[ -n "$PD" ] && measure_user "run true, default network" podman "$P run --rm --network slirp4netns busybox true"
measure_user "cached rebuild" strata "$RS build -q --network none -t bench/small $W/ctx"
[ -n "$PD" ] && measure_user "cached rebuild" podman "$P build -q --layers --network none --pull=never -t bench/small $W/ctx"
measure_root "cached rebuild" strata-root "$RS build -q --network none -t bench/small $W/ctx"

python3 - "$results" <<'PY'
import sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, tool, m = line.rstrip("\n").split("\t")
    rows.setdefault(name, {})[tool] = None if m == "failed" else float(m)
tools = ["strata", "podman", "strata-root"]
heads = ["strata (rootless)", "podman (rootless)", "strata (root)"]
print("| scenario | " + " | ".join(heads) + " | strata vs podman | rootless vs root strata |")
print("|---" * 6 + "|")
def ms(v):
    return f"{v*1000:.1f} ms" if v < 0.1 else f"{v*1000:.0f} ms"
for name, r in rows.items():
    cells = [ms(r[t]) if r.get(t) else "–" for t in tools]
    def ratio(a, b, fast="faster", slow="slower"):
        if not (r.get(a) and r.get(b)):
            return "–"
        x = r[b] / r[a]
        return f"{x:.1f}× {fast}" if x >= 1 else f"{1 / x:.1f}× {slow}"
    print(f"| {name} | " + " | ".join(cells) + f" | {ratio('strata', 'podman')} | {ratio('strata', 'strata-root')} |")
PY

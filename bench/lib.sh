# Shared by the bench scripts (sourced): installs what they use and starts a
# private dockerd when none answers. Each script calls `bench_deps` first and
# `bench_docker_up DIR` once its work directory exists; `bench_docker_down`
# (from the script's cleanup) stops the daemon it started, if any.
D=/usr/bin/docker
DOCKERD_PIDFILE=
DOCKER_OK=

bench_deps() {
  scripts/install-deps.sh >&2
}

# Sets DOCKER_OK=1 when a daemon answers (the running one, or a private one
# started by scripts/dockerd-up.sh with its state under DIR).
bench_docker_up() { # DIR
  [ -x $D ] || return 0
  if ! $D info >/dev/null 2>&1; then
    DOCKERD_PIDFILE=$(bash scripts/dockerd-up.sh "$1" || true)
  fi
  if $D info >/dev/null 2>&1; then DOCKER_OK=1; fi
  return 0
}

bench_docker_down() {
  if [ -n "$DOCKERD_PIDFILE" ] && [ -s "$DOCKERD_PIDFILE" ]; then
    kill "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null || true
  fi
}

# S: the strata binary measured: $STRATA_BIN when set, else this tree's
# release build.
bench_strata() {
  if [ -n "${STRATA_BIN:-}" ]; then
    S=$STRATA_BIN
  else
    cargo build --release --quiet -p strata-cli
    S=$PWD/target/release/strata
  fi
}

# A free TCP port of 127.0.0.1.
bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# CACHE (bench/.cache) and TAR: the Debian bookworm minbase rootfs as a tar,
# made with debootstrap the first time and cached there.
bench_debian_tar() {
  CACHE=bench/.cache
  mkdir -p "$CACHE"
  if [ ! -s "$CACHE/debian.tar" ]; then
    echo "bench: debootstrap bookworm minbase (once, cached in $CACHE)" >&2
    rm -rf "$CACHE/rootfs"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1
    rm -rf "$CACHE"/rootfs/var/cache/apt/* "$CACHE"/rootfs/var/lib/apt/lists/* "$CACHE"/rootfs/var/log/*
    tar --numeric-owner --sort=name -C "$CACHE/rootfs" -cf "$CACHE/debian.tar" .
  fi
  TAR=$CACHE/debian.tar
}

# Starts Debian's docker-registry (CNCF distribution) on a free port of
# 127.0.0.1 with its storage and config under DIR, access log off; sets
# REG_PORT and REG_PID (the caller kills it), exits when it does not answer.
bench_registry_up() { # DIR
  local dreg=/usr/bin/docker-registry
  [ -x $dreg ] || { echo "bench: $dreg is not installed (apt-get install docker-registry)" >&2; exit 1; }
  REG_PORT=$(bench_free_port)
  cat >"$1/distribution.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  cache: { blobdescriptor: inmemory }
  filesystem: { rootdirectory: "$1/registry" }
http: { addr: "127.0.0.1:$REG_PORT" }
YML
  $dreg serve "$1/distribution.yml" >"$1/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$REG_PORT/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "bench: the registry does not answer" >&2
  cat "$1/registry.log" >&2
  exit 1
}

# One measurement: `hyperfine ARGS...` (the caller gives runs, warmup,
# shell), its median appended to $results as SCENARIO<TAB>TOOL<TAB>seconds,
# or "failed" with the end of its log shown.
bench_measure() { # scenario tool hyperfine-args...
  local name=$1 tool=$2
  shift 2
  local json="$W/$name-$tool.json" log="$W/$name-$tool.log"
  if hyperfine --style none --export-json "$json" "$@" >"$log" 2>&1; then
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['median'])" "$json" |
      { read -r m; printf '%s\t%s\t%s\n' "$name" "$tool" "$m" >>"$results"; }
  else
    echo "bench: $name with $tool failed:" >&2
    tail -5 "$log" >&2
    printf '%s\t%s\tfailed\n' "$name" "$tool" >>"$results"
  fi
}

# The next variant for a tool, in timed commands: `$(bench_next TOOL)`
# (a counter file under $W; exported for hyperfine's bash).
bench_next() { local f=$W/next.$1 k; k=$(cat "$f" 2>/dev/null || echo 0); echo $((k + 1)) >"$f"; echo "$k"; }

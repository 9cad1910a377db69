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

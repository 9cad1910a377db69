#!/usr/bin/env bash
# Makes podman and buildah runnable on this kind of host for benchmarks and
# tests, without touching /etc: prints the path of a containers.conf to pass
# as CONTAINERS_CONF. Host quirks handled (see shared/peers/README.md):
# - cgroup "hybrid" mode: crun refuses to run while a controller sits on the
#   v2 hierarchy at /sys/fs/cgroup/unified; mounting a v1 hierarchy for it
#   moves it off v2 (runc and dockerd do not care). Kept mounted on purpose.
# - root lacks CAP_SYS_RESOURCE: pin the default rlimits to what may be set.
# Usage: CONTAINERS_CONF=$(scripts/podman-env.sh DIR) podman ...
set -euo pipefail
D=${1:?usage: podman-env.sh DIR}
mkdir -p "$D"
if [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ] && [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    mkdir -p "/sys/fs/cgroup/$c"
    mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || true
  done
fi
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu); { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
cat > "$D/containers.conf" <<CONF
[containers]
netns = "none"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
echo "$D/containers.conf"

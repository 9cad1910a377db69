#!/usr/bin/env bash
# The main job on a fresh Debian machine, offline apart from package installs:
# build strata, make a busybox root filesystem from Debian's busybox-static,
# import it as the base image, build examples/hello/Dockerfile on it and run
# the result; then list, inspect, history, diff and commit a container, save
# the image as docker and OCI archives and load one back into a second store.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! [ -x /bin/busybox ]; then apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null; fi
cargo build --release --quiet
S=./target/release/strata
W=$(mktemp -d /tmp/strata-demo.XXXXXX)
export STRATA_ROOT=$W/store
scripts/busybox-rootfs.sh "$W/rootfs"
set -x
$S import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
          --change 'CMD ["/bin/sh"]' -m "busybox from Debian's busybox-static" "$W/rootfs" busybox:latest
$S build -t hello:latest examples/hello
$S run --rm hello
$S build -t hello:latest examples/hello   # every step CACHED
$S run --name demo busybox sh -c 'echo changed > /etc/motd'
$S diff demo
$S commit -m "motd" demo busybox:motd
$S rm demo
$S tag busybox:latest localhost:5000/demo/busybox:1
$S images
$S inspect --format '{{.Id}} {{json .Config.Cmd}} {{.Os}}/{{.Architecture}}' busybox
$S history hello
$S save -o "$W/busybox.tar" busybox
$S save --format oci-archive -o "$W/busybox-oci.tar" busybox
STRATA_ROOT=$W/store2 $S load -i "$W/busybox.tar"
STRATA_ROOT=$W/store2 $S images
$S system df
set +x
echo "demo: done; everything is under $W"

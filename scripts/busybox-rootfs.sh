#!/usr/bin/env bash
# Makes a tiny root filesystem from Debian's busybox-static: /bin/busybox,
# a symlink per applet, /etc/passwd and /etc/group. Usage: busybox-rootfs.sh DIR
set -euo pipefail
R=${1:?usage: busybox-rootfs.sh DIR}
BB=${BUSYBOX:-/bin/busybox}
[ -x "$BB" ] || { echo "busybox-rootfs: $BB not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$R"/{bin,etc,tmp,root,proc,sys,dev,usr/bin,var}
chmod 1777 "$R/tmp"
cp "$BB" "$R/bin/busybox"
for a in $("$BB" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"

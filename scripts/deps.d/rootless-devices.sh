#!/usr/bin/env bash
# Rootless networking (pasta, slirp4netns) opens /dev/net/tun and
# fuse-overlayfs opens /dev/fuse as the user. Debian's udev rules
# (50-udev-default.rules) make both 0666; a host without udev (this CI VM:
# a bare devtmpfs) has them 0600, so set what udev would. Nothing else of the
# host changes.
set -euo pipefail
for dev in /dev/net/tun /dev/fuse; do
  if [ -c "$dev" ]; then
    chmod 0666 "$dev"
    echo "rootless-devices: $dev is $(stat -c %a "$dev") (as Debian's udev makes it)"
  else
    echo "rootless-devices: $dev is missing: rootless networking or fuse-overlayfs will not work (their tests say skipped)"
  fi
done

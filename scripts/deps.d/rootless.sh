#!/usr/bin/env bash
# Rootless strata and its peer (#19): shadow-utils' setuid newuidmap and
# newgidmap (uidmap) for the subordinate-id maps, `useradd`/`usermod`
# (passwd) and `runuser`/`setpriv` (util-linux) for the test users, and
# rootless podman with what it runs on here: crun, conmon, fuse-overlayfs
# (its fallback when the kernel refuses an unprivileged overlay mount),
# slirp4netns and passt (pasta) for user-mode networking. Idempotent; prints
# a summary. Without them, the rootless tests say `skipped: …`.
#
# The tests (crates/strata-cli/tests/rootless.rs) create their users
# themselves, as root: strata-tsub with a subordinate range in /etc/subuid
# and /etc/subgid, strata-tnosub without.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(uidmap passwd util-linux podman crun conmon fuse-overlayfs slirp4netns passt busybox-static)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "rootless: ${PKGS[*]} already installed"
else
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  apt-get update >"$log" 2>&1 || true
  for p in "${missing[@]}"; do
    if apt-get install -y --no-install-recommends "$p" >>"$log" 2>&1; then
      echo "rootless: installed $p"
    else
      echo "rootless: could not install $p (the rootless tests that need it will skip)"
    fi
  done
fi
# Unprivileged user namespaces: Debian's kernels have a switch for them
# (kernel.unprivileged_userns_clone), and newer ones may be limited by
# AppArmor; say so rather than change the host's policy.
if [ -r /proc/sys/kernel/unprivileged_userns_clone ] && [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = 0 ]; then
  echo "rootless: kernel.unprivileged_userns_clone is 0: the rootless tests will skip (sysctl -w kernel.unprivileged_userns_clone=1)"
fi
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = 0 ]; then
  echo "rootless: user.max_user_namespaces is 0: the rootless tests will skip"
fi
exit 0

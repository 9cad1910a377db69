#!/usr/bin/env bash
# Foreign-CPU emulation (strata-emulation's and `run --platform`'s tests):
# Debian's qemu-user-static (the interpreters `strata buildx install-emulators`
# registers; binfmt-support is deliberately not installed, so nothing is
# registered behind strata's back), and Debian's busybox-static for arm64 and
# armhf as .debs in /opt/strata-deps/foreign-busybox/ (a foreign root
# filesystem for the tests; never run on the host). Idempotent; prints a summary.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
D=/opt/strata-deps/foreign-busybox
ARCHES=(arm64 armhf)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! dpkg-query -W -f='${Status}' qemu-user-static 2>/dev/null | grep -q 'install ok installed'; then
  if { apt-get update >"$log" 2>&1 && apt-get install -y --no-install-recommends qemu-user-static >>"$log" 2>&1; }; then
    echo "emulation: installed qemu-user-static"
  else
    echo "emulation: could not install qemu-user-static (the emulation tests will skip)"
  fi
fi
have_all() {
  for a in "${ARCHES[@]}"; do
    ls "$D"/busybox-static_*_"$a".deb >/dev/null 2>&1 || return 1
  done
}
if have_all; then
  echo "emulation: foreign busybox-static already in $D"
else
  mkdir -p "$D"
  added=0
  for a in "${ARCHES[@]}"; do
    dpkg --print-foreign-architectures | grep -qx "$a" || { dpkg --add-architecture "$a"; added=1; }
  done
  ok=1
  if [ "$added" = 1 ] || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    apt-get update >"$log" 2>&1 || ok=0
  fi
  for a in "${ARCHES[@]}"; do
    ls "$D"/busybox-static_*_"$a".deb >/dev/null 2>&1 && continue
    (cd "$D" && apt-get download "busybox-static:$a" >>"$log" 2>&1) || ok=0
  done
  if [ "$ok" = 1 ] && have_all; then
    echo "emulation: downloaded busybox-static for ${ARCHES[*]} into $D"
  else
    echo "emulation: could not download busybox-static for ${ARCHES[*]} (the emulation tests will skip)"
  fi
fi
exit 0

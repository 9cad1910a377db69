#!/usr/bin/env bash
# strata sbom throughput: the Debian bookworm minbase image (bench/.cache/
# debian.tar imported) and a ~1 GB image built on it from this machine's
# files (shared libraries, Go's toolchain with its Go binaries, the Python
# standard library: three COPY layers), each catalogued to strata's JSON;
# beside `cat` of the same layer blobs (page cache warm, as for strata).
# Prints a markdown table of medians (hyperfine) and MB/s of plain layer
# bytes.
#
#   bench/scan.sh          # RUNS=5
#   RUNS=3 bench/scan.sh
#
# Measured 2026-12-05 on the 2-core VM, other builds running (bench/README.md):
#   debian minbase, 121 MB, 1 layer     83 ms   1469 MB/s   (cat: 19 ms)
#   + 3 COPY layers, 1532 MB           577 ms   2654 MB/s   (cat: 305 ms)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/lib.sh
command -v hyperfine >/dev/null || bench_deps
bench_strata
bench_debian_tar
W=$(mktemp -d /tmp/strata-bench-scan.XXXXXX)
trap 'rm -rf "$W"' EXIT

# The big image's context: hard links where the file system allows, copies elsewhere.
mkdir -p "$W/ctx"
for d in /usr/lib/x86_64-linux-gnu:lib /usr/lib/go-1.19:go /usr/lib/python3.11:python; do
  src=${d%%:*}
  dst=$W/ctx/${d##*:}
  [ -d "$src" ] || { mkdir -p "$dst"; continue; }
  cp -al "$src" "$dst" 2>/dev/null || cp -a "$src" "$dst"
done
cat >"$W/ctx/Dockerfile" <<'EOF'
FROM debian:bench
COPY lib /opt/big/lib
COPY go /opt/big/go
COPY python /opt/big/python
EOF

"$S" --root "$W/store" import "$TAR" debian:bench >/dev/null
"$S" --root "$W/store" build -q -t big:bench "$W/ctx" >/dev/null

# Plain bytes of an image's layers (docker's Size), its layer blobs' paths
# and their bytes as stored.
plain_bytes() { "$S" --root "$W/store" inspect --format '{{.Size}}' "$1"; }
blobs() {
  "$S" --root "$W/store" save "$1" | tar -t | grep -E '^blobs/sha256/' | while read -r b; do
    f=$W/store/blobs/sha256/${b##*/}
    # Layers only: documents are small.
    if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 65536 ]; then echo "$f"; fi
  done
}

row() { # LABEL IMAGE
  local label=$1 image=$2
  local files
  files=$(blobs "$image" | tr '\n' ' ')
  local plain stored
  plain=$(plain_bytes "$image")
  # shellcheck disable=SC2086
  stored=$(du -cb $files | tail -1 | cut -f1)
  hyperfine --runs "$RUNS" --warmup 1 --export-json "$W/h.json" \
    -n sbom "$S --root $W/store sbom --format json $image >/dev/null" \
    -n cat "cat $files >/dev/null" >/dev/null 2>&1
  python3 - "$W/h.json" "$label" "$plain" "$stored" <<'PY'
import json, sys
h = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
label, plain, stored = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s, c = h["sbom"]["median"], h["cat"]["median"]
mb = plain / 1e6
print(f"| {label} | {mb:.0f} MB ({stored/1e6:.0f} MB stored) | {s*1000:.0f} ms | {mb/s:.0f} MB/s | {c*1000:.0f} ms | {stored/1e6/c:.0f} MB/s | {s/c:.1f}× |")
PY
}

packages() { "$S" --root "$W/store" sbom --format json "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))'; }

echo "| image | layers (plain) | strata sbom | sbom MB/s (plain) | cat blobs | cat MB/s | sbom ÷ cat |"
echo "|---|---|---|---|---|---|---|"
row "debian bookworm minbase ($(packages debian:bench) packages)" debian:bench
row "debian + 3 COPY layers ($(packages big:bench) packages)" big:bench

# A scan with the whole fixture database (../shared/vulndb: 8k OSV records)
# imported: warm (the database and the image in the page cache).
V=../shared/vulndb
if ls $V/*.zip >/dev/null 2>&1; then
  "$S" --root "$W/store" scan db import $V/*.zip >/dev/null
  hyperfine --runs "$RUNS" --warmup 1 --export-json "$W/s.json" \
    -n debian "$S --root $W/store scan image --format json debian:bench >/dev/null" \
    -n big "$S --root $W/store scan image --format json big:bench >/dev/null" >/dev/null 2>&1
  echo
  echo "| scan (warm, whole fixture database) | median |"
  echo "|---|---|"
  python3 - "$W/s.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| strata scan image {r['command']} | {r['median']*1000:.0f} ms |")
PY
else
  echo "bench: $V absent: scan timing skipped" >&2
fi

#!/usr/bin/env bash
# Regenerates apk-oracle.txt: apk-tools' own verdicts on the pairs the test
# generator draws. apk-tools is not packaged in Debian, so its version code
# is built here from its sources (never copied into strata-vercmp) with the
# small harness apk-oracle.c. Needs git, a C compiler and python3, and
# apk-tools' repository: GitHub's, or APK_TOOLS_GIT (any clonable copy).
# Usage: [APK_TOOLS_GIT=…] tests/data/apk-oracle.sh [APK_TOOLS_COMMIT]
set -euo pipefail
commit=${1:-90b974fd8510fbc2b3d6adde311ad1ba8754c728}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "${APK_TOOLS_GIT:-https://github.com/alpinelinux/apk-tools}" "$work/apk-tools"
git -C "$work/apk-tools" checkout -q "$commit"
src="$work/apk-tools/src"
gcc -O1 -std=gnu11 -D_GNU_SOURCE -w -I"$src" -o "$work/apk-oracle" "$here/apk-oracle.c" \
  "$src/version.c" "$src/ctype.c" "$src/blob.c"
STRATA_VERCMP_APK_PAIRS="$work/pairs.txt" cargo test -q -p strata-vercmp --test oracle -- \
  --ignored apk_dump_pairs_for_the_record >/dev/null
"$work/apk-oracle" "$work/pairs.txt" >"$work/verdicts.txt"
version=$(git -C "$work/apk-tools" describe --tags 2>/dev/null || echo "$commit")
python3 - "$work/pairs.txt" "$work/verdicts.txt" "$here/apk-oracle.txt" "$version" "$commit" <<'PY'
import sys
pairs, verdicts, out, version, commit = sys.argv[1:]
rows = []
for line, v in zip(open(pairs).read().splitlines(), open(verdicts).read().splitlines()):
    a, b = (bytes.fromhex(h).decode() for h in line.split(","))
    assert all(" " not in s and '"' not in s and "#" not in s and s.isprintable() for s in (a, b)), (a, b)
    rows.append(f'{a or chr(34) * 2} {b or chr(34) * 2} {v}')
head = [
    f"# apk-tools {version} (github.com/alpinelinux/apk-tools at {commit})",
    "# on pairs from tests/oracle/generate.rs (seed 0xA9C). Lines: A B VERDICT, where VERDICT",
    "# is the validity of A and of B (apk_version_validate: 1 or 0), then apk_version_compare's",
    '# <, = or >, or x when a side is invalid; "" is the empty string.',
    "# Regenerate with tests/data/apk-oracle.sh (see README.md).",
]
open(out, "w").write("\n".join(head + rows) + "\n")
PY
echo "apk-oracle.sh: recorded $(grep -vc '^#' "$here/apk-oracle.txt") pairs from apk-tools $version"

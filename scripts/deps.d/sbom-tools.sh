#!/usr/bin/env bash
# strata-sbom's tests: Go (a Go binary's build info), rpm (a real rpmdb.sqlite),
# binutils (objcopy: an ELF with a cargo-auditable .dep-v0 section), and the
# official SBOM validators (spdx-tools' pyspdxtools, cyclonedx-python-lib's
# JSON validator) in a venv of Debian's python3. Idempotent; prints a summary.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in golang-go rpm binutils python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log=$(mktemp)
  if { apt-get update >"$log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; then
    echo "sbom-tools: installed ${missing[*]}"
  else
    echo "sbom-tools: could not install some of ${missing[*]} (the sbom tests that need them will say so)"
  fi
  rm -f "$log"
fi
V=/opt/strata-deps/sbom-validators
if [ -x "$V/bin/pyspdxtools" ] && "$V/bin/python" -c 'import cyclonedx.validation.json, jsonschema' >/dev/null 2>&1; then
  echo "sbom-tools: validators already installed in $V"
elif /usr/bin/python3 -m venv "$V" >/dev/null 2>&1 \
  && "$V/bin/pip" install -q spdx-tools 'cyclonedx-python-lib[json-validation]' >/dev/null 2>&1; then
  echo "sbom-tools: installed spdx-tools and cyclonedx-python-lib in $V"
else
  echo "sbom-tools: could not install the SBOM validators (the sbom validator test will skip)"
fi
exit 0

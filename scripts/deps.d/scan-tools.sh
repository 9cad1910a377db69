#!/usr/bin/env bash
# strata-scan's tests: validators for the reports it writes, in a venv of
# Debian's python3 at /opt/strata-deps/sarif — jsonschema with the SARIF
# 2.1.0 schema (from an npm package, at install time) and cyclonedx-python-lib's
# strict CycloneDX 1.5 JSON validator. Idempotent; prints a summary. The
# tests that need them print `skipped: …` when they are absent.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
V=/opt/strata-deps/sarif
SCHEMA="$V/sarif-schema-2.1.0.json"
missing=()
dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q 'install ok installed' || missing+=(python3-venv)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  log=$(mktemp)
  { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 \
    || echo "scan-tools: could not install ${missing[*]}"
  rm -f "$log"
fi
if [ -x "$V/bin/python" ] && "$V/bin/python" -c 'import jsonschema, cyclonedx.validation.json' >/dev/null 2>&1; then
  echo "scan-tools: validators already installed in $V"
elif /usr/bin/python3 -m venv "$V" >/dev/null 2>&1 \
  && "$V/bin/pip" install -q jsonschema 'cyclonedx-python-lib[json-validation]' >/dev/null 2>&1; then
  echo "scan-tools: installed jsonschema and cyclonedx-python-lib in $V"
else
  echo "scan-tools: could not install the validators (the scan report validation tests will skip)"
fi
# The schema itself: the SARIF 2.1.0 (rtm.5) JSON schema that Microsoft's
# jest-sarif package ships, taken from its npm tarball.
if [ ! -s "$SCHEMA" ] && [ -d "$V" ] && command -v npm >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack -q @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null 2>&1 && tar xzf ./*.tgz) \
    && [ -s "$tmp/package/lib/schemas/sarif-2.1.0-rtm.5.json" ]; then
    cp "$tmp/package/lib/schemas/sarif-2.1.0-rtm.5.json" "$SCHEMA"
    echo "scan-tools: SARIF 2.1.0 schema in $SCHEMA"
  else
    echo "scan-tools: could not fetch the SARIF 2.1.0 schema (the SARIF validation test will skip)"
  fi
  rm -rf "$tmp"
fi
exit 0

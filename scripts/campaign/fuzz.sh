#!/usr/bin/env bash
# Fuzzing campaign (#16 item 4): runs every cargo-fuzz target in fuzz/ for
# SECONDS (default 1800) each, FUZZ_JOBS (default 2) at a time, niced, in
# libFuzzer's fork mode so that a crash is saved and the run goes on, then
# prints one summary line per target: wall time, executions, coverage,
# crashes/timeouts/OOMs, and where the crashing inputs are.
#
#   scripts/campaign/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# New inputs go into fuzz/corpus/<target>/; minimize before committing:
#   (cd fuzz && cargo +nightly fuzz cmin -s none <target>)
# Crashing inputs go into fuzz/artifacts/<target>/: each one becomes a
# fixed bug with a regression test, and is copied into the corpus, which
# CI replays on stable (crates/strata-fuzz/tests/replay.rs).
set -uo pipefail
cd "$(dirname "$0")/../../fuzz"

secs=${1:-1800}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
jobs=${FUZZ_JOBS:-2}
logs=${FUZZ_LOGS:-$(mktemp -d /tmp/strata-fuzz.XXXXXX)}
flags=(-s none -a)
# The harnesses make a store, a registry or a root per input: on tmpfs their
# fsyncs cost nothing.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

cargo +nightly fuzz build "${flags[@]}" || exit 1

run_one() {
    local t=$1 start end
    mkdir -p "corpus/$t" "artifacts/$t"
    local dict=()
    if [ -f "dict/$t.dict" ]; then
        dict=(-dict="dict/$t.dict")
    fi
    start=$(date +%s)
    nice -n 19 cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" -- "${dict[@]}" \
        -max_total_time="$secs" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -rss_limit_mb=2048 -timeout=20 -max_len=65536 -artifact_prefix="artifacts/$t/" \
        >"$logs/$t.log" 2>&1
    end=$(date +%s)
    echo "$((end - start))" >"$logs/$t.wall"
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

status=0
printf '%-18s %8s %12s %8s %s\n' target wall_s execs cov "oom/timeout/crash"
for t in "${targets[@]}"; do
    last=$(grep -E '^#[0-9]+: cov:' "$logs/$t.log" | tail -n 1)
    execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
    cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$last")
    otc=$(sed -E 's#.*oom/timeout/crash: ([0-9/]+).*#\1#' <<<"$last")
    printf '%-18s %8s %12s %8s %s\n' "$t" "$(cat "$logs/$t.wall" 2>/dev/null)" "${execs:-?}" "${cov:-?}" "${otc:-?}"
    found=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    if [ "$found" -gt 0 ]; then
        echo "  $found crashing input(s) in fuzz/artifacts/$t/"
        status=1
    fi
done
echo "logs: $logs"
exit $status

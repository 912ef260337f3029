#!/usr/bin/env bash
# Run the libFuzzer targets in fuzz/ for a bounded time each, on the installed nightly toolchain
# (ADR 0102). cargo-fuzz is not needed: this builds the fuzz crate the way `cargo fuzz build`
# does (SanitizerCoverage instrumentation through RUSTFLAGS, libFuzzer linked by libfuzzer-sys,
# debug assertions and overflow checks on) and runs the binaries directly.
#
#   scripts/fuzz.sh                       # blocks for 600 s, tx_decode for 60 s
#   scripts/fuzz.sh blocks=900            # one target, 900 s
#   FUZZ_BUILD_ONLY=1 scripts/fuzz.sh     # build the instrumented binaries, run nothing
#   FUZZ_ASAN=1 scripts/fuzz.sh ...       # add AddressSanitizer (slower; only unsafe code gains)
#
# Environment: FUZZ_TARGET_DIR (default ~/.cache/magnet-fuzz-nightly, kept apart from the
# stable target dir), FUZZ_TOOLCHAIN (default nightly), FUZZ_JOBS (libFuzzer -jobs, default 1),
# FUZZ_ARGS (extra libFuzzer flags), FUZZ_OUT (findings, default fuzz/artifacts/<target>/).
# New inputs that grow coverage go to fuzz/corpus-work/<target>/ (not committed); the committed
# seeds in fuzz/corpus/<target>/ are read but never written. Everything runs under `nice -n 19`.
# Exit status: 0 when no target found a crash, 1 otherwise (each crash input is listed).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/magnet-fuzz-nightly}"
triple="$(rustc +"$toolchain" -vV | sed -n 's/^host: //p')"

if [ "$#" -eq 0 ]; then
    set -- blocks=600 tx_decode=60
fi

flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags="$flags -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
flags="$flags -Cllvm-args=-sanitizer-coverage-pc-table"
flags="$flags -Cllvm-args=-sanitizer-coverage-trace-compares"
flags="$flags --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
if [ "${FUZZ_ASAN:-0}" = 1 ]; then
    flags="$flags -Zsanitizer=address"
fi

bins=()
for spec in "$@"; do bins+=("--bin" "${spec%%=*}"); done
echo "== building ${bins[*]} with $(rustc +"$toolchain" --version) into $target_dir"
# --target keeps the instrumentation off build scripts and proc macros.
(cd "$root/fuzz" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target_dir" \
    nice -n 19 cargo +"$toolchain" build --release --target "$triple" "${bins[@]}")
if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
    exit 0
fi

status=0
for spec in "$@"; do
    name="${spec%%=*}"
    secs="${spec#*=}"
    [ "$secs" = "$spec" ] && secs=600
    bin="$target_dir/$triple/release/$name"
    seeds="$root/fuzz/corpus/$name"
    work="$root/fuzz/corpus-work/$name"
    out="${FUZZ_OUT:-$root/fuzz/artifacts/$name}"
    mkdir -p "$work" "$out"
    log="$out/fuzz-$(date -u +%Y%m%dT%H%M%SZ).log"
    echo "== $name for ${secs}s (log: $log)"
    # Apps write their stores under TMPDIR: tmpfs when there is one.
    tmp="${TMPDIR:-/tmp}"
    [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
    jobs=()
    if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
        # Parallel jobs each log to fuzz-<n>.log in the working directory: run from $out.
        jobs=("-jobs=$FUZZ_JOBS" "-workers=$FUZZ_JOBS")
    fi
    before=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
    set +e
    # shellcheck disable=SC2086
    (cd "$out" && TMPDIR="$tmp" nice -n 19 "$bin" "$work" "$seeds" \
        -max_total_time="$secs" "${jobs[@]}" \
        -artifact_prefix="$out/" -print_final_stats=1 -timeout=60 -rss_limit_mb=4096 \
        ${FUZZ_ARGS:-} >"$log" 2>&1)
    rc=$?
    set -e
    grep -hE '^#[0-9]+.*(DONE|pulse)|stat::' "$log" "$out"/fuzz-*.log 2>/dev/null | tail -n 8 || true
    after=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
    new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
    if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
        status=1
        echo "!! $name exited $rc; new findings:"
        echo "$new"
        grep -h -m 5 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" "$out"/fuzz-*.log 2>/dev/null || true
    else
        echo "== $name: no crash"
    fi
done
exit "$status"

#!/usr/bin/env bash
# Builds the libFuzzer harness (Fuzz/ChorusFuzz, see docs/fuzzing.md) and fuzzes each target for
# a bounded time, starting from the seeds in Fuzz/corpus/<target>/ after replaying every saved
# reproducer in Fuzz/regressions/<target>/. Fails on any crash, leak, timeout or oracle
# disagreement; libFuzzer then leaves the input in .build-fuzz/artifacts/.
#
# Usage: scripts/fuzz.sh [target ...]          (default: every target)
#   FUZZ_SECONDS=20    seconds per target (CI: 9 targets x 20 s)
#   FUZZ_FLAGS="..."   more libFuzzer flags, e.g. "-jobs=2 -workers=2" or "-runs=100000"
# A longer run for developers: FUZZ_SECONDS=1800 scripts/fuzz.sh json
# The build has its own scratch path (.build-fuzz), so the normal .build is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh libhiredis-dev zlib1g-dev pkg-config
all=(frames json topics token envelope inflate member client redis)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
seconds=${FUZZ_SECONDS:-20}
scratch=.build-fuzz

echo "== building the fuzzer (CHORUS_FUZZ=1, scratch path $scratch)"
start=$(date +%s)
CHORUS_FUZZ=1 swift build --scratch-path "$scratch" --product chorus-fuzz
fuzzer="$(CHORUS_FUZZ=1 swift build --scratch-path "$scratch" --show-bin-path)/chorus-fuzz"
echo "built in $(( $(date +%s) - start )) s: $fuzzer"

mkdir -p "$scratch/artifacts"
# libFuzzer and AddressSanitizer print the stack of a failure; Swift's own backtracer would
# spend minutes symbolicating the large debug binary first.
export SWIFT_BACKTRACE=enable=no
failed=()
summary=()
for target in "${targets[@]}"; do
    [ -d "Fuzz/corpus/$target" ] || { echo "unknown target '$target' (targets: ${all[*]})" >&2; exit 2; }
    export CHORUS_FUZZ_TARGET=$target
    log="$scratch/artifacts/$target.log"
    flags=(-max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        "-artifact_prefix=$scratch/artifacts/$target-")
    # Saved reproducers of fixed findings must pass; `open-<name>` ones are findings still open
    # (KnownFinding.swift): replayed without tolerance, only to say whether they are.
    for reproducer in Fuzz/regressions/"$target"/*; do
        [ -e "$reproducer" ] || continue
        name=$(basename "$reproducer")
        if CHORUS_FUZZ_STRICT=1 "$fuzzer" "${flags[@]}" "$reproducer" >"$log.replay" 2>&1; then
            [[ $name == open-* ]] && echo "$target: $reproducer passes now: its finding looks fixed (see KnownFinding.swift)"
        elif [[ $name == open-* ]]; then
            echo "$target: known open finding still reproduces: $reproducer"
        else
            sed -n -e '/^chorus-fuzz /,/Fatal error/p' -e '/ERROR: /p' -e '/^SUMMARY/p' "$log.replay" | head -40
            failed+=("$target (saved reproducer $reproducer fails again)")
        fi
    done
    echo "== $target: fuzzing for ${seconds} s"
    # New inputs go to the first directory (a working corpus, not committed); seeds are read too.
    mkdir -p "$scratch/corpus/$target"
    # shellcheck disable=SC2086
    if "$fuzzer" "${flags[@]}" -max_total_time="$seconds" ${FUZZ_FLAGS:-} \
        "$scratch/corpus/$target" "Fuzz/corpus/$target" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
        summary+=("$(printf '%-9s %10s runs %8s exec/s %6s edges' "$target" "${runs:-?}" "${speed:-?}" "${edges:-?}")")
    else
        sed -n -e '/^chorus-fuzz /,/Fatal error/p' -e '/ERROR: /p' -e '/^SUMMARY/p' -e '/Test unit written/p' "$log" | head -40
        failed+=("$target (see $log)")
    fi
done
echo "== fuzzing summary"
for line in "${summary[@]}"; do echo "$line"; done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi

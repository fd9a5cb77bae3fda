#!/usr/bin/env bash
# The test suite under AddressSanitizer and its concurrent parts under ThreadSanitizer, each in
# its own build folder (.build-asan, .build-tsan) so the release build stays as it is.
#   scripts/sanitize.sh          every test under ASan; the thread pool, batched and two-stream
#                                decoding and the serving engine under TSan (needs the model)
#   scripts/sanitize.sh --short  the unit tests (tiny models in code) under both
#   scripts/sanitize.sh address  only the ASan part (of either of the above: address --short)
#   scripts/sanitize.sh thread   only the TSan part
set -euo pipefail
cd "$(dirname "$0")/.."
short=0; asan=1; tsan=1
for a in "$@"; do
    case "$a" in
        --short) short=1 ;;
        address) tsan=0 ;;
        thread) asan=0 ;;
        *) echo "usage: scripts/sanitize.sh [--short] [address|thread]" >&2; exit 2 ;;
    esac
done

# Swift's runtime keeps caches for the life of the process that LeakSanitizer would call leaks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

run() {  # run SANITIZER FILTER…
    local s=$1; shift
    local dir=.build-${s/address/asan}; dir=${dir/thread/tsan}
    local t0; t0=$(date +%s)
    mkdir -p "$dir"
    # The whole log is kept in $dir/build.log; on failure its errors are shown.
    swift build -c release --build-tests --sanitize="$s" --scratch-path "$dir" >"$dir/build.log" 2>&1 \
        || { grep -E "error:" "$dir/build.log" | head -20; echo "sanitize: building for $s failed ($dir/build.log)"; return 1; }
    echo "== built for the $s sanitizer in $(( $(date +%s) - t0 )) s ($dir/build.log)"
    local filters=()
    for f in "$@"; do filters+=(--filter "$f"); done
    echo "== tests under the $s sanitizer ${*:+(only $*)}"
    t0=$(date +%s)
    BRAID_BINARY=$PWD/$dir/release/braid swift test -c release --skip-build --sanitize="$s" --scratch-path "$dir" "${filters[@]}"
    echo "== tests under the $s sanitizer passed in $(( $(date +%s) - t0 )) s"
}

# (if, not &&: a function called on the left of && runs with set -e off)
if [ $short = 1 ]; then
    if [ $asan = 1 ]; then run address BraidTests; fi
    if [ $tsan = 1 ]; then run thread 'BraidTests.(KernelTests|InterweaveTests|ModelTests)'; fi
else
    if [ $asan = 1 ]; then run address; fi
    if [ $tsan = 1 ]; then run thread 'BraidTests.(KernelTests|InterweaveTests|ModelTests)' 'BraidIntegrationTests.ServingEngineTests' 'BraidIntegrationTests.TaskVectorIntegrationTests'; fi
fi

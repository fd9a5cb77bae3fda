#!/usr/bin/env bash
# The test suite under AddressSanitizer and its concurrent parts under ThreadSanitizer, each in
# its own build folder (.build-asan, .build-tsan) so the release build stays as it is.
#   scripts/sanitize.sh          every test under ASan; the thread pool, batched and two-stream
#                                decoding and the serving engine under TSan (needs the model)
#   scripts/sanitize.sh --short  CI: the unit tests (tiny models in code) under both
set -euo pipefail
cd "$(dirname "$0")/.."
short=0; [ "${1:-}" = "--short" ] && short=1

# Swift's runtime keeps caches for the life of the process that LeakSanitizer would call leaks.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

run() {  # run SANITIZER FILTER…
    local s=$1; shift
    local dir=.build-${s/address/asan}; dir=${dir/thread/tsan}
    swift build -c release --build-tests --sanitize="$s" --scratch-path "$dir" 2>&1 | grep -E "error|Compiling|Build complete" | tail -3
    local filters=()
    for f in "$@"; do filters+=(--filter "$f"); done
    echo "== tests under the $s sanitizer ${*:+(only $*)}"
    BRAID_BINARY=$PWD/$dir/release/braid swift test -c release --skip-build --sanitize="$s" --scratch-path "$dir" "${filters[@]}"
}

if [ $short = 1 ]; then
    run address BraidTests
    run thread 'BraidTests.(KernelTests|InterweaveTests|ModelTests)'
else
    run address
    run thread 'BraidTests.(KernelTests|InterweaveTests|ModelTests)' 'BraidIntegrationTests.ServingEngineTests' 'BraidIntegrationTests.TaskVectorIntegrationTests'
fi

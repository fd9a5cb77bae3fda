#!/usr/bin/env bash
# libFuzzer over braid's parsers (README: Fuzzing). Builds braid-fuzz with the fuzzer and
# AddressSanitizer into .build-fuzz, then runs each target for FUZZ_SECONDS (default 600) from its
# committed seeds (Fuzz/corpus/TARGET, read only) and what earlier runs found
# (.build-fuzz/corpus/TARGET). Fails on any crash, timeout, leak or out-of-memory; a reproducer is
# left in .build-fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh                  every target
#   scripts/fuzz.sh gguf chat        some of them
#   FUZZ_SECONDS=20 scripts/fuzz.sh  a short run (make test)
#   FUZZ_JOBS=2 scripts/fuzz.sh      two targets at a time
#   FUZZ_CONFIG=debug scripts/fuzz.sh  an unoptimised build: 1.5 min to build instead of 4, a third of
#                                      the executions per second (make test's short run)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${FUZZ_SECONDS:-600}
JOBS=${FUZZ_JOBS:-1}
CONFIG=${FUZZ_CONFIG:-release}
SCRATCH=.build-fuzz
ALL=(gguf taskvector router gate safetensors lora merge-yaml jsonl tokenizer chat)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

# Longest input per target: a few times its largest seed.
max_len() {
    case "$1" in
        gguf|taskvector) echo 32768 ;;
        gate|safetensors|chat) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

# chat is braid-fuzz-server's (it links the HTTP stack, several times longer to build); the rest braid-fuzz's.
product() { [ "$1" = chat ] && echo braid-fuzz-server || echo braid-fuzz; }

start=$(date +%s)
products=()
for t in "${TARGETS[@]}"; do
    case " ${ALL[*]} " in *" $t "*) ;; *) echo "fuzz: unknown target $t (known: ${ALL[*]})" >&2; exit 2 ;; esac
    p=$(product "$t")
    case " ${products[*]} " in *" $p "*) ;; *) products+=("$p") ;; esac
done
mkdir -p "$SCRATCH/logs"
for p in "${products[@]}"; do
    if ! swift build --scratch-path "$SCRATCH" -c "$CONFIG" -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING --product "$p" \
            >"$SCRATCH/logs/build-$p.log" 2>&1; then
        grep -E 'error|warning: .*\.swift' "$SCRATCH/logs/build-$p.log" | head -30 >&2
        echo "fuzz: building $p failed ($SCRATCH/logs/build-$p.log)" >&2
        exit 1
    fi
done
echo "fuzz: built ${products[*]} ($CONFIG) in $(( $(date +%s) - start )) s; ${#TARGETS[@]} targets × ${SECS} s, $JOBS at a time" >&2

mkdir -p "$SCRATCH/logs" "$SCRATCH/tmp"
run_one() {
    local t=$1
    mkdir -p "$SCRATCH/corpus/$t" "$SCRATCH/artifacts/$t"
    local dict=() seeds=()
    [ -f "Fuzz/dict/$t.dict" ] && dict=(-dict="Fuzz/dict/$t.dict")
    [ -d "Fuzz/corpus/$t" ] && seeds=("Fuzz/corpus/$t")
    local t0 status=0
    t0=$(date +%s)
    # The fixtures' temporary files go under .build-fuzz/tmp (removed below, even after a crash).
    # Swift's own backtracer is off: a trap is then libFuzzer's "deadly signal" with a symbolised stack.
    TMPDIR="$PWD/$SCRATCH/tmp" BRAID_FUZZ_TARGET="$t" SWIFT_BACKTRACE=enable=no \
    ASAN_OPTIONS="detect_leaks=1:handle_abort=1:symbolize=1" LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp:print_suppressions=0" \
        "$SCRATCH/$CONFIG/$(product "$t")" "$SCRATCH/corpus/$t" "${seeds[@]}" "${dict[@]}" \
        -max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -detect_leaks=1 -artifact_prefix="$SCRATCH/artifacts/$t/" -print_final_stats=1 \
        >"$SCRATCH/logs/$t.log" 2>&1 || status=$?
    echo $(( $(date +%s) - t0 )) >"$SCRATCH/logs/$t.seconds"
    return $status
}

summary() {
    local t=$1 status=$2 log="$SCRATCH/logs/$1.log"
    local execs cov ft corp secs
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    secs=$(cat "$SCRATCH/logs/$1.seconds" 2>/dev/null || true)
    local last
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' <<<"$last" | cut -d' ' -f2 || true)
    printf '%-12s %-6s %10s execs %6s s  cov %6s  ft %6s  corpus %s\n' "$t" "$status" "${execs:-?}" "${secs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
}

failed=()
declare -A result
pids=()
names=()
wait_one() {
    local pid=${pids[0]} t=${names[0]}
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
    if wait "$pid"; then result[$t]=ok; else result[$t]=FAIL; failed+=("$t"); fi
    summary "$t" "${result[$t]}"
}
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    [ ${#pids[@]} -ge "$JOBS" ] && wait_one
done
while [ ${#pids[@]} -gt 0 ]; do wait_one; done
rm -rf "$SCRATCH/tmp"

echo "fuzz: $(( $(date +%s) - start )) s in all" >&2
if [ ${#failed[@]} -gt 0 ]; then
    for t in "${failed[@]}"; do
        echo "---- $t: $SCRATCH/logs/$t.log" >&2
        grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==|Fatal error|panic' "$SCRATCH/logs/$t.log" | head -20 >&2 || true
        echo "replay: BRAID_FUZZ_TARGET=$t $SCRATCH/$CONFIG/$(product "$t") $SCRATCH/artifacts/$t/FILE  (or an ordinary build: .build/release/$(product "$t") --target=$t FILE)" >&2
    done
    exit 1
fi

#!/bin/sh
# test/fuzz/run.sh - run every libFuzzer harness (build/fuzz/fuzz_*) for a
# given number of seconds each, one after the other.
#
#   sh test/fuzz/run.sh SECONDS [TARGET...]
#
# Each harness starts from its committed corpus (test/fuzz/corpus/<target>,
# read only) plus a scratch corpus under build/fuzz/work/<target> where new
# inputs go; its .dict is used when there is one.  A crash, leak or timeout
# input is kept in build/fuzz/findings/<target>/ and the run fails.  One
# line per harness: "fuzz TARGET: N execs, C corpus, 0 findings".
# FUZZ_JOBS (default 1) harnesses run at once, each at nice 10.
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-60}
shift 2>/dev/null || true
targets=$*
if [ -z "$targets" ]; then
    for b in build/fuzz/fuzz_*; do
        [ -x "$b" ] && targets="$targets ${b##*/fuzz_}"
    done
fi
if [ -z "$targets" ]; then
    echo "fuzz: no harness built (make FUZZ=1 fuzz-bins)"
    exit 1
fi
JOBS=${FUZZ_JOBS:-1}
export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

one() {
    t=$1
    bin=build/fuzz/fuzz_$t
    seed=test/fuzz/corpus/$t
    work=build/fuzz/work/$t
    found=build/fuzz/findings/$t
    log=build/fuzz/log/$t.log
    mkdir -p "$work" "$found" "$(dirname "$log")"
    dict=""
    [ -f "test/fuzz/$t.dict" ] && dict="-dict=test/fuzz/$t.dict"
    # shellcheck disable=SC2086
    nice -n 10 "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$found/" $dict "$work" "$seed" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    n=$(ls "$found" | wc -l)
    corpus=$(ls "$work" | wc -l)
    if [ "$rc" -ne 0 ] || [ "$n" -gt 0 ]; then
        echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} execs, $n findings in $found (see $log)"
        grep -E '^==[0-9]+==ERROR|runtime error|SUMMARY' "$log" | head -n 5
        return 1
    fi
    echo "fuzz $t: ${execs:-0} execs, $((corpus)) new corpus inputs, 0 findings"
}

failed=0
set -- $targets
while [ $# -gt 0 ]; do
    pids=""
    i=0
    while [ $i -lt "$JOBS" ] && [ $# -gt 0 ]; do
        one "$1" >"build/fuzz/.out.$1" 2>&1 &
        pids="$pids $!:$1"
        shift
        i=$((i + 1))
    done
    for pt in $pids; do
        wait "${pt%%:*}" || failed=$((failed + 1))
        cat "build/fuzz/.out.${pt#*:}"
        rm -f "build/fuzz/.out.${pt#*:}"
    done
done
[ "$failed" -eq 0 ]

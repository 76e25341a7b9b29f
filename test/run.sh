#!/bin/sh
# test/run.sh - every test of the project, under ASan+UBSan.
#
# Runs the cmocka unit binaries, the fuzz-corpus replays and the integration
# scripts (which start gateways against a private PostgreSQL and, when a test
# needs one and none answers, a private dockerd).  Ends with one line
# "N passed, N failed" and exits non-zero on any failure or if nothing ran.
#
# Expects `make SAN=1 all unit` to have been run (make test does both).
# TESTS="name ..." limits the integration scripts to those names.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-build/san}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

passed=0
failed=0
failures=""

note_fail() { failed=$((failed + 1)); failures="$failures
  $1"; }

# --- unit tests (cmocka) -----------------------------------------------------
for bin in "$OUT"/test/test_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    log="$OUT/test/$name.log"
    "$bin" >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    p=${p:-0}
    f=${f:-0}
    passed=$((passed + p))
    if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
        [ "$f" -gt 0 ] || f=1
        failed=$((failed + f))
        failures="$failures
  $name (see $log)"
        grep -E '^\[  FAILED  \]|ERROR|runtime error|AddressSanitizer' "$log" | head -n 20
    fi
    echo "unit $name: $p passed, $f failed"
done

# --- fuzz corpus replays -----------------------------------------------------
for bin in "$OUT"/test/replay_*; do
    [ -x "$bin" ] || continue
    target=${bin##*/replay_fuzz_}
    corpus="test/fuzz/corpus/$target"
    [ -d "$corpus" ] || continue
    if "$bin" "$corpus"/* >"$OUT/test/replay_$target.log" 2>&1; then
        passed=$((passed + 1))
        echo "replay $target: ok ($(ls "$corpus" | wc -l) inputs)"
    else
        note_fail "replay $target (see $OUT/test/replay_$target.log)"
        tail -n 20 "$OUT/test/replay_$target.log"
    fi
done

# --- fuzz smoke: each libFuzzer harness for a few seconds ---------------------
# (built by `make FUZZ=1 fuzz-bins`, which `make test` does; FUZZ_SMOKE_S=0 skips)
smoke=${FUZZ_SMOKE_S:-10}
if [ "$smoke" -gt 0 ] && ls build/fuzz/fuzz_* >/dev/null 2>&1; then
    for bin in build/fuzz/fuzz_*; do
        [ -x "$bin" ] || continue
        t=${bin##*/fuzz_}
        if out=$(sh test/fuzz/run.sh "$smoke" "$t" 2>&1); then
            passed=$((passed + 1))
            echo "smoke $t: ${out#fuzz $t: }"
        else
            note_fail "fuzz smoke $t"
            printf '%s\n' "$out"
        fi
    done
fi

# --- integration tests -------------------------------------------------------
scripts=""
for s in test/integration/t_*.sh; do
    [ -f "$s" ] || continue
    n=$(basename "$s" .sh)
    if [ -n "${TESTS:-}" ]; then
        case " $TESTS " in *" $n "* | *" ${n#t_} "*) ;; *) continue ;; esac
    fi
    scripts="$scripts $s"
done

if [ -n "$scripts" ]; then
    T_ROOT=$(mktemp -d /tmp/bfia-t.XXXXXX)
    chmod 755 "$T_ROOT"
    export T_ROOT OUT ROOT
    export PG_DIR="$T_ROOT/pg"
    export DOCKER_STATE="$T_ROOT/dk"
    if ! sh test/support/pg.sh start "$PG_DIR" >"$T_ROOT/pg-start.log" 2>&1; then
        cat "$T_ROOT/pg-start.log"
        note_fail "integration: could not start PostgreSQL"
        scripts=""
    fi
    for s in $scripts; do
        n=$(basename "$s" .sh)
        log="$T_ROOT/$n.out"
        echo "== $n"
        T_NAME=$n timeout 900 sh "$s" >"$log" 2>&1
        rc=$?
        cat "$log"
        p=$(grep -c '^PASS: ' "$log")
        f=$(grep -c '^FAIL: ' "$log")
        passed=$((passed + p))
        failed=$((failed + f))
        for line in $(grep '^FAIL: ' "$log" | sed 's/^FAIL: \([^ ]*\).*/\1/'); do
            failures="$failures
  $n: $line"
        done
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            note_fail "$n exited $rc without reporting a failure"
        fi
    done
    sh test/support/dockerd.sh stop "$DOCKER_STATE" >/dev/null 2>&1 || true
    sh test/support/pg.sh stop "$PG_DIR" >/dev/null 2>&1 || true
    if [ "$failed" -eq 0 ]; then
        rm -rf "$T_ROOT"
    else
        echo "integration logs kept in $T_ROOT"
    fi
fi

if [ -n "$failures" ]; then
    echo "failures:$failures"
fi
if [ $((passed + failed)) -eq 0 ]; then
    echo "no test ran"
    failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/sh
# test/bench/testbed.sh - make testbed-bench: how long the docker-compose
# testbed takes from `make testbed` to the job finished, for 2 and 3 parties:
#
#   cold    the testbed images are not on the engine and the layer cache is
#           empty: they are built from the host's packages and loaded first
#   warm    images present, parties new (fresh volumes, initdb, migrations)
#   reuse   the testbed already up: make testbed again (a new job)
#
# and how long make testbed-down takes.  Runs its own testbed (own project
# names, state dir and free ports) on the engine the testbed would use, and
# removes it at the end.  The demo provider image is left alone (other
# runs may use it).  Prints figures; fails only when a job did not succeed.
set -eu
cd "$(dirname "$0")/../.."
B=$(mktemp -d /tmp/bfia-tbb.XXXXXX)
chmod 755 "$B"
export TESTBED_DIR="$B/tb" TESTBED_NAME="bfia-tbb$$" TESTBED_PARTIES_FILE="$B/parties.conf"
DK=$(sh test/support/dockerd.sh ensure "${TESTBED_DOCKER_STATE:-var/demo/docker}")
export DOCKER_HOST="$DK"

cleanup() {
    sh deploy/compose/testbed.sh down >/dev/null 2>&1 || true
    rm -rf "$B"
}
trap cleanup EXIT INT TERM

free_port() {
    _lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    while :; do
        _p=$(( ( $(od -An -N2 -tu2 /dev/urandom) % (_lo - 11000) ) + 10000 ))
        [ -z "$(ss -Htan "sport = :$_p" 2>/dev/null)" ] && { echo "$_p"; return; }
    done
}
P1=$(free_port) P2=$(free_port) P3=$(free_port)
printf 'a JG0100001100%s1 %s\nb JG0100001100%s2 %s\nc JG0100001100%s3 %s\n' \
    "$P1" "$P1" "$P2" "$P2" "$P3" "$P3" >"$TESTBED_PARTIES_FILE"

now_ms() { date +%s%3N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

# uncache: remove the testbed images from the engine (those no container
# uses) and point the layer cache at an empty directory
uncache() {
    for i in $(docker image ls --format '{{.Repository}}:{{.Tag}}' --filter label=org.bfia.testbed.image); do
        docker image rm "$i" >/dev/null 2>&1 || true
    done
    left=$(docker image ls -q --filter label=org.bfia.testbed.image | wc -l)
    rm -rf "$B/cache"
    export IMAGES_CACHE="$B/cache"
    [ "$left" = 0 ] || echo "note: $left testbed image(s) in use by containers stayed: not fully cold"
}

failed=0
ROWS=""
# run LABEL PARTIES: make testbed's steps, timed from its own output
run() {
    t0=$(now_ms)
    rc=0
    PARTIES=$2 sh deploy/compose/testbed.sh up >"$B/run.log" 2>&1 || rc=$?
    t1=$(now_ms)
    if [ $rc != 0 ]; then
        failed=1
        tail -n 30 "$B/run.log"
    fi
    img=$(awk '/^== Images/ { gsub(/[][]/, "", $(NF-1)); a = $(NF-1) } /^== Parties/ { gsub(/[][]/, "", $(NF-1)); print $(NF-1) - a }' "$B/run.log")
    upr=$(sed -n 's/^parties up and ready in \([0-9.]*\) s/\1/p' "$B/run.log")
    job=$(sed -n 's/.*, job \([0-9.]*\) s)$/\1/p' "$B/run.log")
    tot=$(sed -n 's/.*start to job finished \([0-9.]*\) s.*/\1/p' "$B/run.log")
    ok=$([ $rc = 0 ] && echo success || echo "FAILED ($rc)")
    ROWS="$ROWS$(printf '%-22s %8s s %10s s %7s s %10s s %8s s   %s' "$1" "${img:-?}" "${upr:-?}" "${job:-?}" "${tot:-?}" "$(secs "$t0" "$t1")" "$ok")
"
}
down() {
    t0=$(now_ms)
    sh deploy/compose/testbed.sh down >"$B/down.log" 2>&1 || failed=1
    t1=$(now_ms)
    ROWS="$ROWS$(printf '%-22s %70s s' "  make testbed-down" "$(secs "$t0" "$t1")")
"
}

echo "== testbed benchmarks ($(nproc) cores, engine $DK)"
uncache
run "2 parties, cold" 2
down
run "2 parties, warm" 2
run "2 parties, reuse" 2
down
uncache
run "3 parties, cold" 3
down
run "3 parties, warm" 3
run "3 parties, reuse" 3
down
printf '%-22s %10s %12s %9s %12s %10s   %s\n' case images "up+ready" job "start-to-job" wall outcome
printf '%s' "$ROWS"
echo "images: $(docker image ls --filter label=org.bfia.testbed.image --format '{{.Repository}}:{{.Tag}} {{.Size}}' | tr '\n' ' ')"
exit $failed

#!/bin/sh
# test/bench/run.sh - benchmarks; prints figures, asserts nothing.
#
# Starts its own PostgreSQL and one gateway (the optimised build, log level
# info as in production), then runs wrk on loopback: 16 connections, 10 s
# each (BENCH_SECONDS to change), against /healthz and against an endpoint
# that reads one row from PostgreSQL.  Targets (issue #2, 2 cores, wrk on the
# same machine): /healthz >= 30,000 req/s; DB read >= 15,000 req/s, p99 <= 5 ms.
set -eu
cd "$(dirname "$0")/../.."
SECS=${BENCH_SECONDS:-10}
B=$(mktemp -d /tmp/bfia-b.XXXXXX)
chmod 755 "$B"
GW=build/gateway
cleanup() {
    [ -f "$B/gw.pid" ] && kill -TERM "$(cat "$B/gw.pid")" 2>/dev/null && sleep 0.5
    sh test/support/pg.sh stop "$B/pg" >/dev/null 2>&1 || true
    rm -rf "$B"
}
trap cleanup EXIT INT TERM

sh test/support/pg.sh start "$B/pg" >/dev/null
DSN="host=$B/pg/run dbname=bfia user=postgres"
PORT=${BENCH_PORT:-18480}
GW_NODE_ID=JG0100001100000010 GW_HTTP_PORT=$PORT GW_DB_DSN="$DSN" GW_DATA_DIR="$B/data" GW_HTTP_MAX_CONNS_PER_ADDR=0 \
    GW_LOG_LEVEL=${BENCH_LOG_LEVEL:-info} "$GW" -c conf/test.yaml 2>"$B/gw.log" &
echo $! >"$B/gw.pid"
for i in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] && break
    sleep 0.1
done
psql -X -q -h "$B/pg/run" -U postgres -d bfia -c \
    "INSERT INTO t_route (node_id, host, port) VALUES ('JG0100001100000020', '127.0.0.1', 18481)" >/dev/null

run_wrk() {
    label=$1
    url=$2
    out=$(wrk -t2 -c16 -d"${SECS}s" --latency "$url")
    rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(printf '%s\n' "$out" | awk '$1 == "50%" {print $2}')
    p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
    errs=$(printf '%s\n' "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    printf '%-34s %10s req/s   p50 %-8s p99 %-8s %s\n' "$label" "$rps" "$p50" "$p99" "$errs"
}

echo "== gateway benchmarks (wrk -t2 -c16 -d${SECS}s, loopback, $(nproc) cores)"
run_wrk "GET /healthz" "http://127.0.0.1:$PORT/healthz"
run_wrk "GET route/get (1 PostgreSQL row)" "http://127.0.0.1:$PORT/v1/platform/route/get?node_id=JG0100001100000020"
rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$(cat "$B/gw.pid")/status")
echo "gateway RSS after the runs: $rss"
echo "== memory through bursts (kB): 10,000 refused requests; 4,000 60 KB bodies 300 at"
echo "   a time, and 12 s later; 2,000 connections at once, and 6 s later"
sh test/support/memburst.sh "$PORT" "$(cat "$B/gw.pid")" build/tools/loadconn | tr '\n' ' '
echo
for extra in test/bench/bench_*.sh; do
    [ -f "$extra" ] && sh "$extra"
done
exit 0

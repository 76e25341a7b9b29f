#!/bin/sh
# test/bench/bench_control.sh - control-layer and container-driver figures.
#
#   * POST /v1/interconn/schedule/task/poll and GET .../job/status_all on a
#     node holding 1,000 jobs (targets: poll >= 20,000 req/s, p99 <= 5 ms);
#   * gateway RSS with 1,000 jobs stored (target <= 64 MB);
#   * the Docker driver against `docker run --rm` of the same image, side by
#     side: per-container time and their ratio (target <= 1.0), and
#     containers per second with 8 in flight (target >= 6/s).
# Prints figures; asserts nothing.
set -eu
cd "$(dirname "$0")/../.."
SECS=${BENCH_SECONDS:-10}
B=$(mktemp -d /tmp/bfia-bc.XXXXXX)
chmod 755 "$B"
cleanup() {
    [ -f "$B/gw.pid" ] && kill -TERM "$(cat "$B/gw.pid")" 2>/dev/null && sleep 0.5
    sh test/support/pg.sh stop "$B/pg" >/dev/null 2>&1 || true
    sh test/support/dockerd.sh stop "$B/dk" >/dev/null 2>&1 || true
    rm -rf "$B"
}
trap cleanup EXIT INT TERM

sh test/support/pg.sh start "$B/pg" >/dev/null
PSQL="psql -X -q -h $B/pg/run -U postgres -d bfia"
PORT=${BENCH_PORT:-18482}
# The caller is a FATE-Flow partner (which signs nothing), so the figures are
# the control layer itself; the cost of a signed request is measured apart
# (jwsbench: reqsig verify).
printf 'JG0100001100000020:\n  host: 127.0.0.1\n  port: 9\n  profile: fate-flow\n' >"$B/routes.yaml"
GW_NODE_ID=JG0100001100000010 GW_HTTP_PORT=$PORT GW_DB_DSN="host=$B/pg/run dbname=bfia user=postgres" \
    GW_DATA_DIR="$B/data" GW_DOCKER_HOST="unix://$B/nodocker.sock" GW_ROUTES_FILE="$B/routes.yaml" \
    build/gateway -c conf/test.yaml 2>"$B/gw.log" &
echo $! >"$B/gw.pid"
for i in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" = 200 ] && break
    sleep 0.1
done
# 1,000 finished two-task jobs on both sides of the protocol (the caller,
# node 20, is a party of each: polls from others are refused)
$PSQL <<'EOF'
INSERT INTO t_schedule_job (job_id, dag, config, initiator, scheduler, parties, status, outcome, end_time)
 SELECT 'job' || i, '{"components":[]}', '{}', 'JG0100001100000010', 'JG0100001100000010',
        '["JG0100001100000010","JG0100001100000020"]', 'FINISHED', 'success', now()
 FROM generate_series(1, 1000) i;
INSERT INTO t_schedule_task (job_id, task_id, node_id, task_name, component, status)
 SELECT 'job' || i, 'task_' || i || '_' || t, n, 'c' || t, 'hash_ids', 'SUCCESS'
 FROM generate_series(1, 1000) i, generate_series(1, 2) t,
      unnest(ARRAY['JG0100001100000010','JG0100001100000020']) n;
INSERT INTO t_job (job_id, role, dag, config, initiator, scheduler, status, end_time)
 SELECT 'job' || i, 'guest', '{"components":[]}',
        '{"role":{"guest":["JG0100001100000010"],"host":["JG0100001100000020"]}}',
        'JG0100001100000010', 'JG0100001100000010',
        'FINISHED', now() FROM generate_series(1, 1000) i;
INSERT INTO t_task (job_id, task_id, role, task_name, component, status, exit_code)
 SELECT 'job' || i, 'task_' || i || '_' || t, 'guest', 'c' || t, 'hash_ids', 'SUCCESS', 0
 FROM generate_series(1, 1000) i, generate_series(1, 2) t;
ANALYZE;
EOF
for i in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] && break
    sleep 0.1
done

cat >"$B/poll.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-node-id"] = "JG0100001100000020"
local n = 0
request = function()
    n = n + 1
    local body = string.format('{"task_id":"task_%d_1","role":""}', (n % 1000) + 1)
    return wrk.format(nil, nil, nil, body)
end
EOF
run_wrk() {
    label=$1
    shift
    out=$(wrk -t2 -c16 -d"${SECS}s" --latency "$@")
    rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(printf '%s\n' "$out" | awk '$1 == "50%" {print $2}')
    p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
    printf '%-44s %10s req/s   p50 %-8s p99 %-8s\n' "$label" "$rps" "$p50" "$p99"
}
echo "== control layer on a node holding 1,000 jobs (wrk -t2 -c16 -d${SECS}s)"
# A figure counts only if the request is answered, not refused.
check=$(curl -s -H 'Content-Type: application/json' -H 'x-node-id: JG0100001100000020' -d '{"task_id":"task_7_1","role":""}' "http://127.0.0.1:$PORT/v1/interconn/schedule/task/poll")
echo "sample poll answer: $check"
case "$check" in
*'"code":0'*) run_wrk "POST task/poll (1,000 jobs stored)" -s "$B/poll.lua" "http://127.0.0.1:$PORT/v1/interconn/schedule/task/poll" ;;
*) echo "POST task/poll: NOT MEASURED (the sample was refused)" ;;
esac
check=$(curl -s -H 'x-node-id: JG0100001100000020' "http://127.0.0.1:$PORT/v1/interconn/schedule/job/status_all?job_id=job500")
echo "sample status_all answer: $check"
case "$check" in
*'"code":0'*) run_wrk "GET job/status_all (1,000 jobs stored)" -H 'x-node-id: JG0100001100000020' "http://127.0.0.1:$PORT/v1/interconn/schedule/job/status_all?job_id=job500" ;;
*) echo "GET job/status_all: NOT MEASURED (the sample was refused)" ;;
esac
# task/poll answers come from memory between changes (routes/pollcache.h);
# say how many did, so the figure is read for what it is.
curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^gateway_poll_cache_lookups_total/ {split($1, a, "\""); c[a[2]] = $2}
    END {printf "task/poll cache: %d hits, %d misses (LISTEN bfia_task in effect)\n", c["hit"], c["miss"]}'
echo "gateway RSS with 1,000 jobs stored: $(awk '/VmRSS/ {print $2 " " $3}' "/proc/$(cat "$B/gw.pid")/status")"

# ---- driver vs docker run ------------------------------------------------------
DK=$(sh test/support/dockerd.sh ensure "$B/dk" 2>/dev/null) || { echo "no Docker engine: driver figures skipped"; exit 0; }
docker -H "$DK" image inspect bfia-demo:1.0.0 >/dev/null 2>&1 || sh deploy/providers/build.sh "$DK" >/dev/null
N=${BENCH_CONTAINERS:-16}
echo "== container driver vs docker run --rm (bfia-demo:1.0.0, $N containers, one at a time)"
t0=$(date +%s%N)
i=0
while [ $i -lt "$N" ]; do docker -H "$DK" run --rm --network host bfia-demo:1.0.0 >/dev/null 2>&1 || true; i=$((i + 1)); done
t1=$(date +%s%N)
cli_ms=$(( (t1 - t0) / N / 1000000 ))
drv=$(DOCKERTOOL_IMAGE_CMD=1 build/tools/dockertool "$DK" run bfia-demo:1.0.0 "$N" 1 1 2>/dev/null || true)
drv_ms=$(printf '%s\n' "$drv" | sed -n 's/.*per_container_ms=\([0-9.]*\).*/\1/p')
echo "docker run --rm:        ${cli_ms} ms per container"
echo "driver (create/wait/start/inspect/remove): ${drv_ms} ms per container"
awk -v d="$drv_ms" -v c="$cli_ms" 'BEGIN { printf "ratio driver / docker run: %.2f (target <= 1.0)\n", d / c }'
echo "== driver with 8 in flight"
 (DOCKERTOOL_IMAGE_CMD=1 build/tools/dockertool "$DK" run bfia-demo:1.0.0 32 8 1 2>/dev/null || true) | sed 's/^/  /'
echo "== attestation crypto (one core)"
build/tools/jwsbench 20000 | sed 's/^/  /'

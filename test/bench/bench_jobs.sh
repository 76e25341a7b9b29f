#!/bin/sh
# test/bench/bench_jobs.sh - two gateway nodes and real containers:
#   * scheduler reaction in callback mode: from the SUCCESS callback that
#     completes an upstream task (t_event on the scheduler) to the downstream
#     task/start arriving at the partner (t_event READY there); target p50 <= 20 ms;
#   * BENCH_JOBS (default 100) concurrent two-party jobs: all must finish.
# Prints figures; asserts nothing.
set -eu
cd "$(dirname "$0")/../.."
B=$(mktemp -d /tmp/bfia-bj.XXXXXX)
chmod 755 "$B"
A=JG0100001100000010 H=JG0100001100000020 PA=18581 PH=18582
cleanup() {
    for n in a h; do [ -f "$B/$n.pid" ] && kill -TERM "$(cat "$B/$n.pid")" 2>/dev/null; done
    sleep 0.5
    sh test/support/pg.sh stop "$B/pg" >/dev/null 2>&1 || true
    sh test/support/dockerd.sh stop "$B/dk" >/dev/null 2>&1 || true
    rm -rf "$B"
}
trap cleanup EXIT INT TERM
DK=$(sh test/support/dockerd.sh ensure "$B/dk" 2>/dev/null) || { echo "no Docker engine: job figures skipped"; exit 0; }
docker -H "$DK" image inspect bfia-demo:1.0.0 >/dev/null 2>&1 || sh deploy/providers/build.sh "$DK" >/dev/null
sh test/support/pg.sh start "$B/pg" >/dev/null
for db in na nh; do sh test/support/pg.sh createdb "$B/pg" $db >/dev/null; done
printf '%s:\n  host: 127.0.0.1\n  port: %s\n  auth: off\n' $A $PA $H $PH >"$B/routes.yaml"
start() { # letter id port
    GW_NODE_ID=$2 GW_HTTP_PORT=$3 GW_DB_DSN="host=$B/pg/run dbname=n$1 user=postgres" \
        GW_DOCKER_HOST="$DK" GW_ROUTES_FILE="$B/routes.yaml" GW_DATA_DIR="$B/$1" GW_LOG_LEVEL=warn \
        GW_DB_QUEUE_MAX=100000 build/gateway -c conf/test.yaml 2>"$B/$1.log" &
    echo $! >"$B/$1.pid"
}
start a $A $PA
start h $H $PH
for p in $PA $PH; do
    for i in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/readyz")" = 200 ] && break
        sleep 0.1
    done
    sh deploy/demo/provider.sh "http://127.0.0.1:$p" >/dev/null
done
build/bfiactl --url "http://127.0.0.1:$PA" dataset upload deploy/demo/data/guest.csv demo guest >/dev/null
build/bfiactl --url "http://127.0.0.1:$PH" dataset upload deploy/demo/data/host.csv demo host >/dev/null
PSQL() { psql -X -q -t -A -h "$B/pg/run" -U postgres -d "$1" -c "$2"; }

submit() { curl -s -H 'Content-Type: application/json' --data-binary @deploy/demo/job.json \
    "http://127.0.0.1:$PA/v1/platform/schedule/job/create_all" | jq -r .data.job_id; }
wait_all() { # seconds
    i=0
    while [ $i -lt $(($1 * 10)) ]; do
        left=$(PSQL na "SELECT count(*) FROM t_schedule_job WHERE status <> 'FINISHED'")
        [ "$left" = 0 ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

N=${BENCH_REACTION_JOBS:-10}
echo "== scheduler reaction, callback mode ($N sequential two-party jobs, real containers)"
for i in $(seq "$N"); do submit >/dev/null; wait_all 60 || break; done
# per job: last upstream SUCCESS at the scheduler -> first downstream READY at the partner
PSQL na "SELECT t.job_id, extract(epoch FROM max(e.ts)) FROM t_event e JOIN t_schedule_task t
          ON e.entity_id = t.job_id || '/' || t.task_id || '@' || t.node_id
          WHERE e.entity = 'schedule_task' AND e.to_status = 'SUCCESS' AND t.task_name = 'hash_ids_0'
          GROUP BY t.job_id ORDER BY 1" >"$B/up.txt"
PSQL nh "SELECT t.job_id, extract(epoch FROM min(e.ts)) FROM t_event e JOIN t_task t
          ON e.entity_id = t.job_id || '/' || t.task_id || '/' || t.role || '.' || t.role_index
          WHERE e.entity = 'task' AND e.to_status = 'READY' AND t.task_name = 'col_stats_0'
          GROUP BY t.job_id ORDER BY 1" >"$B/down.txt"
join -t '|' "$B/up.txt" "$B/down.txt" | awk -F'|' '{ printf "%.3f\n", ($3 - $2) * 1000 }' | sort -n >"$B/react.txt"
n=$(wc -l <"$B/react.txt")
if [ "$n" -gt 0 ]; then
    p50=$(awk -v n="$n" 'NR == int((n + 1) / 2) {print}' "$B/react.txt")
    mx=$(tail -n 1 "$B/react.txt")
    echo "reaction (upstream SUCCESS -> downstream task/start at the partner): p50 ${p50} ms, max ${mx} ms over $n jobs (target p50 <= 20 ms)"
fi

J=${BENCH_JOBS:-100}
echo "== $J concurrent two-party jobs (2 tasks each, 4 containers per job)"
t0=$(date +%s)
pids=""
for i in $(seq "$J"); do
    submit >/dev/null &
    pids="$pids $!"
done
# shellcheck disable=SC2086
wait $pids
if wait_all 900; then
    ok=$(PSQL na "SELECT count(*) FROM t_schedule_job WHERE outcome = 'success'")
    echo "all finished in $(( $(date +%s) - t0 )) s: $ok of $(PSQL na "SELECT count(*) FROM t_schedule_job") jobs succeeded"
else
    echo "not finished after 900 s: $(PSQL na "SELECT status || ' ' || count(*) FROM t_schedule_job GROUP BY status" | tr '\n' ' ')"
fi
echo "RSS: scheduler $(awk '/VmRSS/ {print $2 " " $3}' "/proc/$(cat "$B/a.pid")/status"), partner $(awk '/VmRSS/ {print $2 " " $3}' "/proc/$(cat "$B/h.pid")/status")"

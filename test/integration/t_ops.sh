# t_ops.sh - what operators run into (issue 13 items 5 and 7):
#   - two installations with the same node id on one Docker engine: the
#     second refuses to start, naming the first, and touches none of its
#     containers; an installation's own restart still adopts its own;
#   - overload: every endpoint answers HTTP 503 with Retry-After when the
#     database cannot take more work, the platform create_all included
#     (it relays the scheduler's answer).
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started"
    exit 0
fi
N=JG0100001100000610 M=JG0100001100000620
PX=$(free_port) PY=$(free_port) PM=$(free_port)
R="$T_ROOT/ops-routes.yaml"
routes_file "$R" $N "$PX" $M "$PM"
new_db ox
new_db oy
new_db om
node_start ox $N "$PX" "$R" GW_SCHED_POLL_MS=200
node_start om $M "$PM" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PX" 20 && gw_ready "$PM" 20
expect nodes_ready "$?" 0
register_demo "$PX" >/dev/null
register_demo "$PM" >/dev/null
upload "$PX" demo guest deploy/demo/data/guest.csv >/dev/null
upload "$PM" demo host deploy/demo/data/host.csv >/dev/null
job() { job_json poll ".config.initiator.node_id = \"$N\" | .config.role.guest = [\"$N\"] | .config.role.host = [\"$M\"] | ${1:-.}"; }

# --- item 7: installations sharing a node id ----------------------------------
INST=$(psql_db ox -c "SELECT install_id FROM t_site")
check install_id_recorded sh -c "printf '%s' '$INST' | grep -Eq '^[0-9a-f]{16}$'"
r=$(api POST "$PX" /v1/platform/schedule/job/create_all "$(job '.config.task_params.common.hash_ids_0.sleep_ms = 20000')")
J=$(printf '%s' "$r" | jq -r '.data.job_id // ""')
i=0
while [ "$(docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.job=$J" --filter "label=org.bfia.node=$N" | wc -l)" = 0 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
CID=$(docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.job=$J" --filter "label=org.bfia.node=$N" | head -1)
check container_running test -n "$CID"
expect container_labelled_with_installation "$(docker -H "$DOCKER_URL" inspect -f '{{index .Config.Labels "org.bfia.install"}}' "$CID")" "$INST"
# a second installation with the same node id, its own database, same engine
node_start oy $N "$PY" "$R"
i=0
while kill -0 "$(gw_pid oy)" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$(gw_pid oy)" 2>/dev/null; then
    fail second_installation_refused_to_start "it is still running after 20 s"
    kill -9 "$(gw_pid oy)" 2>/dev/null
    wait "$(gw_pid oy)" 2>/dev/null
else
    wait "$(gw_pid oy)" 2>/dev/null
    expect second_installation_refused_to_start "$?" 1
fi
check second_installation_names_the_first grep -q "another installation of node $N (install id $INST" "$T_ROOT/oy.log"
expect first_installations_container_untouched "$(docker -H "$DOCKER_URL" inspect -f '{{.State.Running}}' "$CID")" true
# the first installation restarted: adopts its own container, the job ends well
kill -9 "$(gw_pid ox)"
wait "$(gw_pid ox)" 2>/dev/null
node_start ox $N "$PX" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PX" 30
expect own_restart_serves "$?" 0
check own_container_adopted grep -q '"task container adopted"' "$T_ROOT/ox.log"
expect job_after_restart_succeeds "$(job_wait "$PX" "$J" 90)" success
# once no container of the first runs, the second may start, and leaves the
# first's exited containers alone
i=0
while [ "$(docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.install=$INST" | wc -l)" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
docker -H "$DOCKER_URL" create --label org.bfia.managed=true --label "org.bfia.node=$N" \
    --label "org.bfia.install=$INST" --name "ops-exited-$INST" bfia-demo:1.0.0 >/dev/null 2>&1
node_start oy $N "$PY" "$R"
gw_ready "$PY" 20
expect second_installation_starts_when_first_idle "$?" 0
expect others_exited_container_kept "$(docker -H "$DOCKER_URL" ps -aq --filter "name=ops-exited-$INST" | wc -l)" 1
docker -H "$DOCKER_URL" rm -f "ops-exited-$INST" >/dev/null 2>&1
gw_stop oy

# --- item 5: overload answers -------------------------------------------------
# one database connection and a wait queue of one: a burst of create_all
# must meet "busy", and busy is HTTP 503 with Retry-After on every path
gw_stop ox
node_start ox $N "$PX" "$R" GW_DB_POOL_SIZE=1 GW_DB_QUEUE_MAX=1
gw_ready "$PX" 20
pids=""
for k in $(seq 1 40); do
    curl -s -D "$T_ROOT/over.$k.h" -o "$T_ROOT/over.$k.b" -H 'Content-Type: application/json' \
        --data-binary "$(job)" "http://127.0.0.1:$PX/v1/platform/schedule/job/create_all" &
    pids="$pids $!"
done
wait $pids
busy=0 wrong=0
for k in $(seq 1 40); do
    c=$(jq -r '.code // ""' "$T_ROOT/over.$k.b" 2>/dev/null)
    if [ "$c" = 6004 ]; then
        busy=$((busy + 1))
        head -1 "$T_ROOT/over.$k.h" | grep -q ' 503' && grep -qi '^Retry-After:' "$T_ROOT/over.$k.h" || wrong=$((wrong + 1))
    fi
done
check overload_seen sh -c "[ $busy -gt 0 ]"
expect overload_answers_503_with_retry_after "$wrong" 0
expect overload_node_still_serves "$(http_status "http://127.0.0.1:$PX/healthz")" 200

gw_stop ox
expect ox_exit_clean "$GW_RC" 0
check ox_sanitizer_clean sanitizer_clean ox
gw_stop om
expect om_exit_clean "$GW_RC" 0
check om_sanitizer_clean sanitizer_clean om
check oy_sanitizer_clean sanitizer_clean oy

# t_testbed.sh - the docker-compose testbed (deploy/compose/, make testbed):
# images built offline and reproducibly, two parties brought up by
# `make testbed` running a real job (checked in each party's own database),
# signed node-to-node calls, logs and /metrics per party, reuse of a running
# testbed, a gateway container restarted mid-job (partner and scheduler, a
# succeeding and a failing job: each ends in its true outcome), a party's
# PostgreSQL restarted mid-job, and `make testbed-down` leaving no container,
# volume or network of the testbed and nothing else removed.
#
# The testbed runs under $T_ROOT/tb with its own project names, node ids and
# free ports, on the engine the other tests use ($DOCKER_STATE); its images
# stay on the engine for the next run (reused while their sources are the same).
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started (see $DOCKER_STATE)"
    exit 0
fi
pass engine_available
if ! command -v docker-compose >/dev/null 2>&1; then
    fail docker_compose_installed "docker-compose missing (make deps)"
    exit 0
fi
pass docker_compose_installed
export DOCKER_HOST="$DOCKER_URL"

NAME=bfiat$$
export TESTBED_NAME=$NAME TESTBED_DIR="$T_ROOT/tb" TESTBED_DOCKER_STATE="$DOCKER_STATE"
export TESTBED_PARTIES_FILE="$T_ROOT/parties.conf" PARTIES=2
PA=$(free_port)
PB=$(free_port)
while [ "$PB" = "$PA" ]; do PB=$(free_port); done
# node ids of this run only (the engine may be shared with other test runs)
A=JG01000011${PA}1 B=JG01000011${PB}2
printf 'a %s %s\nb %s %s\n' $A "$PA" $B "$PB" >"$TESTBED_PARTIES_FILE"
TB="$TESTBED_DIR"

cid() { docker ps -q --filter "label=com.docker.compose.project=$NAME-$1" --filter "label=com.docker.compose.service=$2"; }
dbq() { docker exec "$(cid "$1" postgres)" psql -X -q -t -A -U postgres -d bfia -c "$2"; }
ours_containers() { docker ps -aq --filter "label=org.bfia.testbed=$NAME" | wc -l; }
ours_volumes() { docker volume ls -q --filter "label=org.bfia.testbed=$NAME" | wc -l; }
ours_networks() { { docker network ls -q --filter "label=com.docker.compose.project=$NAME-a"; docker network ls -q --filter "label=com.docker.compose.project=$NAME-b"; } | wc -l; }
ours_tasks() { { docker ps -aq --filter "label=org.bfia.node=$A"; docker ps -aq --filter "label=org.bfia.node=$B"; } | wc -l; }
dc() { (cd "$TB/$1" && shift && docker-compose "$@" 2>&1); }

# --- images -------------------------------------------------------------------
t0=$(date +%s%3N)
imgs=$(sh deploy/compose/images.sh "$DOCKER_URL" 2>"$T_ROOT/images.log")
expect images_built "$?" 0
t1=$(date +%s%3N)
GWI=$(printf '%s\n' "$imgs" | sed -n 's/^GW_IMAGE=//p')
PGI=$(printf '%s\n' "$imgs" | sed -n 's/^PG_IMAGE=//p')
gw_mb=$(( $(docker image inspect -f '{{.Size}}' "$GWI") / 1000000 ))
pg_mb=$(( $(docker image inspect -f '{{.Size}}' "$PGI") / 1000000 ))
echo "images: $GWI ${gw_mb} MB, $PGI ${pg_mb} MB ($((t1 - t0)) ms, $(grep -c 'loaded in' "$T_ROOT/images.log") loaded)"
check gateway_image_small sh -c "[ $gw_mb -gt 5 ] && [ $gw_mb -lt 40 ]"
check postgres_image_small sh -c "[ $pg_mb -gt 30 ] && [ $pg_mb -lt 120 ]"
expect image_tag_pins_id "$(docker image inspect -f '{{.Id}}' "$GWI" | cut -c8-19)" "${GWI##*-}"
strip -o "$T_ROOT/gateway.stripped" build/gateway
expect gateway_image_is_this_build "$(docker run --rm --network none "$GWI" cat /usr/bin/gateway | sha256sum)" \
    "$(sha256sum <"$T_ROOT/gateway.stripped")"
check images_list_debian_packages sh -c "docker run --rm --network none --entrypoint cat '$PGI' /usr/share/bfia/debian-packages.txt | grep -q '^postgresql-15='"
# the same sources with an empty cache give the same image ids (reproducible)
imgs2=$(IMAGES_CACHE="$T_ROOT/imgcache" sh deploy/compose/images.sh "$DOCKER_URL" 2>"$T_ROOT/images2.log")
expect images_reproducible "$imgs2" "$imgs"
check images_not_reloaded_when_present sh -c "! grep -q 'loaded in' '$T_ROOT/images2.log'"
rm -rf "$T_ROOT/imgcache"

# --- a bad description is refused, naming the fault, and starts nothing ---------
# bad_desc NAME CONTENT WANT_EXIT WANT_TEXT [VAR=value]
bad_desc() {
    printf "$2" >"$T_ROOT/bad.conf"
    _out=$(env TESTBED_PARTIES_FILE="$T_ROOT/bad.conf" ${5:-} sh deploy/compose/testbed.sh up 2>&1)
    _rc=$?
    if [ "$_rc" = "$3" ] && printf '%s' "$_out" | grep -q "$4"; then
        pass "$1"
    else
        fail "$1" "exit $_rc, output: $(printf '%s' "$_out" | tail -n 2 | tr '\n' ' ')"
    fi
}
bad_desc desc_port_not_number "a $A 1831x\nb $B $PB\n" 2 "port '1831x' is not a number"
bad_desc desc_port_out_of_range "a $A 80\nb $B $PB\n" 2 "port 80 is not in 1024..65535"
bad_desc desc_port_twice "a $A $PA\nb $B $PA\n" 2 "'$PA' is used by two parties"
bad_desc desc_node_twice "a $A $PA\nb $A $PB\n" 2 "'$A' is used by two parties"
bad_desc desc_bad_node_id "a JG/01 $PA\nb $B $PB\n" 2 "node id 'JG/01'"
bad_desc desc_bad_name "A $A $PA\nb $B $PB\n" 2 "party name 'A'"
bad_desc desc_extra_field "a $A $PA x\nb $B $PB\n" 2 "expected NAME NODE_ID PORT"
bad_desc desc_too_few "a $A $PA\n" 2 "fewer than 2 parties"
bad_desc desc_three_of_two "a $A $PA\nb $B $PB\n" 2 "fewer than 3 parties" PARTIES=3
bad_desc desc_parties_not_number "a $A $PA\nb $B $PB\n" 2 "PARTIES must be a number" PARTIES=two
# a port some other process listens on
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(60)' "$PA" &
NCPID=$!
i=0
while [ -z "$(ss -Htln "sport = :$PA")" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
bad_desc desc_port_in_use "a $A $PA\nb $B $PB\n" 1 "port $PA (party a) is in use"
kill "$NCPID" 2>/dev/null
wait "$NCPID" 2>/dev/null
expect bad_desc_started_no_container "$(ours_containers)" 0
expect bad_desc_created_no_volume "$(ours_volumes)" 0

# --- make testbed ---------------------------------------------------------------
# a sentinel container and volume of our own: testbed-down must leave them
docker volume create --label "org.bfia.test=$NAME" "$NAME-sentinel" >/dev/null
docker create --name "$NAME-sentinel" --label "org.bfia.test=$NAME" --network none "$PGI" >/dev/null
nets_before=$(docker network ls -q)

t0=$(date +%s%3N)
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s testbed >"$T_ROOT/testbed-up.log" 2>&1
rc=$?
t1=$(date +%s%3N)
expect make_testbed_exit "$rc" 0
[ $rc = 0 ] || tail -n 40 "$T_ROOT/testbed-up.log"
echo "make testbed (2 parties, images present): $((t1 - t0)) ms"
check testbed_says_succeeded grep -q "succeeded across 2 parties" "$T_ROOT/testbed-up.log"
check testbed_says_how_to_submit grep -q "bfiactl --url http://127.0.0.1:$PA job submit" "$T_ROOT/testbed-up.log"
check testbed_says_how_to_stop grep -q "make testbed-down" "$T_ROOT/testbed-up.log"
J=$(cat "$TB/last-job" 2>/dev/null)
expect job_outcome_from_a_db "$(dbq a "SELECT status || '/' || outcome FROM t_schedule_job WHERE job_id = '$J'")" FINISHED/success
expect job_tasks_from_a_db "$(dbq a "SELECT count(*) FROM t_task WHERE job_id = '$J' AND role = 'guest' AND status = 'SUCCESS' AND exit_code = 0")" 2
expect job_from_b_db "$(dbq b "SELECT status FROM t_job WHERE job_id = '$J' AND role = 'host'")" FINISHED
expect job_tasks_from_b_db "$(dbq b "SELECT count(*) FROM t_task WHERE job_id = '$J' AND role = 'host' AND status = 'SUCCESS' AND exit_code = 0")" 2
expect job_not_in_b_schedule "$(dbq b "SELECT count(*) FROM t_schedule_job WHERE job_id = '$J'")" 0
check job_report_written_at_b test -s "$TB/b/data/storage/$J/col_stats_0.report.host.0/data"
# the default job is the PSI (deploy/compose/jobs/psi.sh): 1200 of the ids are shared
expect psi_default_job_matched_at_a "$(jq -r .intersection_count "$TB/a/data/storage/$J/psi_0.report.guest.0/data" 2>/dev/null)" 1200
expect psi_default_job_matched_at_b "$(jq -r .intersection_count "$TB/b/data/storage/$J/psi_0.report.host.0/data" 2>/dev/null)" 1200
expect psi_col_stats_read_intersection "$(jq -r .rows "$TB/b/data/storage/$J/col_stats_0.report.host.0/data" 2>/dev/null)" 1200
expect each_party_own_db "$(dbq a "SELECT node_id FROM t_site"):$(dbq b "SELECT node_id FROM t_site")" "$A:$B"

for p in a b; do
    expect "health_${p}_postgres" "$(docker inspect -f '{{.State.Health.Status}}' "$(cid $p postgres)")" healthy
    expect "health_${p}_gateway" "$(docker inspect -f '{{.State.Health.Status}}' "$(cid $p gateway)")" healthy
done
expect postgres_has_no_network "$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$(cid a postgres)")" none
expect gateway_on_host_network "$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$(cid a gateway)")" host
expect gateway_image_pinned "$(docker inspect -f '{{.Config.Image}}' "$(cid a gateway)")" "$GWI"

# logs and metrics per party
check logs_per_party sh -c "(cd '$TB/b' && docker-compose logs --no-color gateway) | grep -q '\"process.start\"'"
expect metrics_a "$(http_status "http://127.0.0.1:$PA/metrics")" 200
check metrics_b_counts_requests sh -c "curl -s http://127.0.0.1:$PB/metrics | grep -q '^gateway_http_requests_total'"

# node-to-node calls are signed: b served a's calls, refused none, and
# refuses an unsigned call naming a as the caller
check b_served_signed_calls_from_a sh -c "(cd '$TB/b' && docker-compose logs --no-color gateway) | grep '\"peer\":\"$A\"' | grep -q '/v1/interconn/schedule/job/create'"
check b_refused_nothing sh -c "! (cd '$TB/b' && docker-compose logs --no-color gateway) | grep -q '\"auth.refused\"'"
check route_table_pins_key grep -q "key: '{" "$TB/b/route_table.yaml"
r=$(curl -s -H 'Content-Type: application/json' -H "x-source-node-id: $A" -H "x-target-node-id: $B" \
    --data-binary "{\"job_id\":\"$J\",\"task_id\":\"x\",\"role\":\"host\"}" "http://127.0.0.1:$PB/v1/interconn/schedule/task/poll")
expect unsigned_call_refused "$(code_of "$r")" 5004

# --- reuse (with the demo job kit, which the restart cases below edit) --------------
ids_before="$(cid a gateway) $(cid a postgres) $(cid b gateway) $(cid b postgres)"
t0=$(date +%s%3N)
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL TESTBED_JOB=demo make -s testbed >"$T_ROOT/testbed-reuse.log" 2>&1
expect make_testbed_again_exit "$?" 0
t1=$(date +%s%3N)
echo "make testbed on the running testbed: $((t1 - t0)) ms"
expect running_testbed_reused "$(cid a gateway) $(cid a postgres) $(cid b gateway) $(cid b postgres)" "$ids_before"
J2=$(cat "$TB/last-job")
check second_job_is_new sh -c "[ '$J2' != '$J' ]"
expect second_job_outcome "$(dbq a "SELECT outcome FROM t_schedule_job WHERE job_id = '$J2'")" success

# --- restarts mid-job ----------------------------------------------------------------
submit() { # jq filter on the testbed's job -> job id
    jq -c "$1" "$TB/job.json" >"$T_ROOT/job-x.json"
    build/bfiactl --url "http://127.0.0.1:$PA" job submit "$T_ROOT/job-x.json"
}
# wait_running PARTY JOB: until that party's hash_ids_0 task is RUNNING (its own DB)
wait_running() {
    _i=0
    while [ $_i -lt 150 ]; do
        [ "$(dbq "$1" "SELECT status FROM t_task WHERE job_id = '$2' AND task_name = 'hash_ids_0'" 2>/dev/null)" = RUNNING ] && return 0
        sleep 0.2
        _i=$((_i + 1))
    done
    return 1
}
SLEEP='.config.task_params.common.hash_ids_0.sleep_ms = 6000'

# 1. the partner's gateway restarted while its task runs: the job succeeds
J3=$(submit "$SLEEP")
wait_running b "$J3"
expect partner_task_running_before_restart "$?" 0
dc b restart gateway >"$T_ROOT/restart-b.log"
expect partner_gateway_restarted "$?" 0
expect partner_restart_job_outcome "$(job_wait "$PA" "$J3" 120)" success
expect partner_restart_tasks_from_b_db "$(dbq b "SELECT string_agg(task_name || ':' || status || ':' || exit_code, ' ' ORDER BY task_name) FROM t_task WHERE job_id = '$J3'")" \
    "col_stats_0:SUCCESS:0 hash_ids_0:SUCCESS:0"
check partner_adopted_its_task sh -c "(cd '$TB/b' && docker-compose logs --no-color gateway) | grep '\"reconcile\"' | grep -q '$J3'"

# 2. the scheduler's gateway restarted while the partner's task runs and then
#    fails: the job fails (its true outcome), everywhere
J4=$(submit "$SLEEP | .config.task_params.host = {\"0\": {\"hash_ids_0\": {\"dataset_id\": \"demo#host\", \"fail\": true}}}")
wait_running b "$J4"
expect scheduler_task_running_before_restart "$?" 0
dc a restart gateway >"$T_ROOT/restart-a.log"
expect scheduler_gateway_restarted "$?" 0
expect scheduler_restart_job_outcome "$(job_wait "$PA" "$J4" 120)" failed
expect scheduler_restart_failed_task_from_b_db "$(dbq b "SELECT status || ':' || exit_code FROM t_task WHERE job_id = '$J4' AND task_name = 'hash_ids_0'")" FAILED:3
expect scheduler_restart_outcome_from_a_db "$(dbq a "SELECT outcome FROM t_schedule_job WHERE job_id = '$J4'")" failed

# 3. the partner's PostgreSQL restarted mid-job: the gateway reconnects, the job succeeds
J5=$(submit "$SLEEP")
wait_running b "$J5"
expect pg_restart_task_running "$?" 0
dc b restart postgres >"$T_ROOT/restart-pg.log"
expect partner_postgres_restarted "$?" 0
expect pg_restart_job_outcome "$(job_wait "$PA" "$J5" 120)" success
gw_ready "$PB" 20
expect pg_restart_gateway_ready "$?" 0
expect pg_restart_tasks_from_b_db "$(dbq b "SELECT count(*) FROM t_task WHERE job_id = '$J5' AND status = 'SUCCESS'")" 2
check pg_restart_connection_loss_logged sh -c "(cd '$TB/b' && docker-compose logs --no-color gateway) | grep -q '\"db.conn_lost\"'"

# --- make testbed-down --------------------------------------------------------------
expect tasks_left_before_down "$(ours_tasks)" 0
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s testbed-down >"$T_ROOT/testbed-down.log" 2>&1
expect make_testbed_down_exit "$?" 0
expect down_no_container "$(ours_containers)" 0
expect down_no_volume "$(ours_volumes)" 0
expect down_no_compose_network "$(ours_networks)" 0
gone=0
for n in $nets_before; do docker network inspect "$n" >/dev/null 2>&1 || gone=$((gone + 1)); done
expect down_removed_no_other_network "$gone" 0
expect down_no_task_container "$(ours_tasks)" 0
check down_state_removed sh -c "[ ! -e '$TB' ]"
check down_left_other_container docker inspect "$NAME-sentinel"
check down_left_other_volume docker volume inspect "$NAME-sentinel"
check down_left_images docker image inspect "$GWI" "$PGI"
docker rm -f "$NAME-sentinel" >/dev/null 2>&1
docker volume rm "$NAME-sentinel" >/dev/null 2>&1
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s testbed-down >"$T_ROOT/testbed-down2.log" 2>&1
expect down_twice_is_harmless "$?" 0
exit 0

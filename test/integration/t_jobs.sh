# t_jobs.sh - multi-node BFIA jobs on real gateways, a real PostgreSQL and a
# real Docker engine: both sync modes, a third-party scheduler, failures,
# stops, approval, an unreachable party, crashes of partner and scheduler,
# idempotent repeats and bad input that changes nothing.
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started (see $DOCKER_STATE)"
    exit 0
fi
pass engine_available

A=JG0100001100000010 B=JG0100001100000020 C=JG0100001100000030 D=JG0100001100000040
PA=$(free_port) PB=$(free_port) PC=$(free_port) PD=$(free_port)
R="$T_ROOT/routes.yaml"
routes_file "$R" $A "$PA" $B "$PB" $C "$PC" $D "$PD"
for n in ja jb jc; do new_db $n; done
node_start ja $A "$PA" "$R" GW_SCHED_POLL_MS=200
node_start jb $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_SCHED_PUSH_RETRY_S=1
node_start jc $C "$PC" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20 && gw_ready "$PB" 20 && gw_ready "$PC" 20
expect three_nodes_ready "$?" 0

for p in $PA $PB $PC; do
    r=$(register_demo "$p")
    expect "provider_registered_$p" "$(code_of "$r")" 0
done
expect dataset_guest "$(code_of "$(upload "$PA" demo guest deploy/demo/data/guest.csv)")" 0
expect dataset_host "$(code_of "$(upload "$PB" demo host deploy/demo/data/host.csv)")" 0

submit() { api POST "$1" /v1/platform/schedule/job/create_all "$2"; }
# iapi NODE METHOD PORT PATH [BODY]: an interconn call from NODE (every
# interconn caller must be a node of the route table)
iapi() {
    _node=$1
    shift
    if [ $# -ge 4 ]; then
        curl -s -X "$1" -H "x-node-id: $_node" -H 'Content-Type: application/json' --data-binary "$4" "http://127.0.0.1:$2$3"
    else
        curl -s -X "$1" -H "x-node-id: $_node" "http://127.0.0.1:$2$3"
    fi
}
job_of() { printf '%s' "$1" | jq -r '.data.job_id // ""'; }
containers_of() { docker -H "$DOCKER_URL" ps -aq --filter "label=org.bfia.job=$1" | wc -l; }

# --- two parties, poll mode -------------------------------------------------
r=$(submit "$PA" "$(job_json poll)")
expect poll_job_created "$(code_of "$r")" 0
J=$(job_of "$r")
expect poll_job_outcome "$(job_wait "$PA" "$J" 60)" success
i=0
while [ "$(containers_of "$J")" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect poll_job_partner_rows_success "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J' AND status='SUCCESS' AND exit_code=0 AND status_channel IN ('callback','exit_code')")" 2
expect poll_job_partner_job_finished "$(psql_db jb -c "SELECT status FROM t_job WHERE job_id='$J'")" FINISHED
# the partner's job transitions are logged and counted where they commit
# (scheduler/store.c), like every task transition
trans() { curl -s "http://127.0.0.1:$1/metrics" | awk -v k="gateway_state_transitions_total{entity=\"$2\",to=\"$3\"}" '$1 == k {print $2}'; }
for to in RUNNING FINISHED; do
    # the first job on B: its one t_job row (host) moved once each way
    expect "partner_job_${to}_counted" "$(trans "$PB" job $to)" 1
    check "partner_job_${to}_logged" sh -c "grep '\"event\":\"state.change\"' '$T_ROOT/jb.log' | grep '\"job_id\":\"$J\"' | grep '\"entity\":\"job\"' | grep -q '\"to\":\"$to\"'"
done
expect poll_job_scheduler_view "$(api GET "$PA" "/v1/platform/schedule/job/status_all?job_id=$J" | jq -c '[.data.tasks[] | .status + "/" + .channel] | unique')" '["SUCCESS/poll"]'
check poll_job_report_written sh -c "ls $T_ROOT/ja/data/storage/$J/ | grep -q col_stats_0.report.guest.0"
check poll_job_report_is_json jq -e '.columns // . | length > 0' "$T_ROOT/jb/data/storage/$J/col_stats_0.report.host.0/data"
expect poll_job_containers_removed "$(containers_of "$J")" 0
expect poll_job_channel_poll "$(psql_db ja -c "SELECT count(*) > 0 FROM t_schedule_task WHERE job_id='$J' AND status_channel='poll'")" t
st=$(curl -s -X GET -H "x-node-id: $B" -H 'Content-Type: application/json' --data-binary "{\"job_id\":\"$J\"}" "http://127.0.0.1:$PA/v1/interconn/schedule/job/status_all")
expect status_all_get_with_json_body_keyed_by_task_name "$(printf '%s' "$st" | jq -r '.data.status.col_stats_0')" SUCCESS
logs=$(api GET "$PB" "/v1/platform/schedule/task/get_log_line?task_id=$(psql_db jb -c "SELECT task_id FROM t_task WHERE job_id='$J' AND task_name='hash_ids_0'")&log_level=info")
check get_log_line_counts_real_lines sh -c "[ $(printf '%s' "$logs" | jq '.data.num') -gt 0 ]"

# --- callback mode ------------------------------------------------------------
# hash_ids_0 reports with T0 from config.attest.token (env_token switch): the
# environment's token is live, so the claim is taken at once ('callback'),
# not held for the exit code
r=$(submit "$PA" "$(job_json callback '.config.task_params.common.hash_ids_0.env_token = true')")
J2=$(job_of "$r")
expect callback_job_outcome "$(job_wait "$PA" "$J2" 60)" success
expect env_token_callback_taken "$(psql_db jb -c "SELECT string_agg(status_channel, ',') FROM t_task WHERE job_id='$J2' AND task_name='hash_ids_0'")" callback
expect callback_job_channel_callback "$(psql_db ja -c "SELECT count(*) > 0 FROM t_schedule_task WHERE job_id='$J2' AND status_channel='callback'")" t
expect callback_job_events_recorded "$(psql_db ja -c "SELECT count(*) > 0 FROM t_event WHERE entity='schedule_task' AND entity_id LIKE '$J2/%'")" t

# --- third-party scheduler (C schedules a job between A and B) --------------
r=$(submit "$PA" "$(job_json callback ".config.job_params.common.scheduler = \"$C\"")")
J3=$(job_of "$r")
expect third_party_created "$(code_of "$r")" 0
expect third_party_outcome "$(job_wait "$PC" "$J3" 60)" success
expect third_party_job_on_c_only "$(psql_db jc -c "SELECT count(*) FROM t_schedule_job WHERE job_id='$J3'"):$(psql_db ja -c "SELECT count(*) FROM t_schedule_job WHERE job_id='$J3'")" 1:0
expect third_party_partner_knows_scheduler "$(psql_db jb -c "SELECT DISTINCT scheduler FROM t_job WHERE job_id='$J3'")" $C

# --- a failing task fails the job; downstream never starts -------------------
r=$(submit "$PA" "$(job_json poll '.config.task_params.host["0"].hash_ids_0.fail = true')")
J4=$(job_of "$r")
expect failing_job_outcome "$(job_wait "$PA" "$J4" 60)" failed
why=$(psql_db ja -c "SELECT error_text FROM t_schedule_job WHERE job_id='$J4'")
case "$why" in *"$B"*) pass failing_job_reason_names_node ;; *) fail failing_job_reason_names_node "error_text '$why'" ;; esac
expect failing_job_host_exit_code "$(psql_db jb -c "SELECT exit_code FROM t_task WHERE job_id='$J4' AND task_name='hash_ids_0'")" 3
expect failing_job_downstream_never_started "$(psql_db ja -c "SELECT count(*) FROM t_task WHERE job_id='$J4' AND task_name='col_stats_0'")$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J4' AND task_name='col_stats_0'")" 00
expect failing_job_guest_finished "$(psql_db ja -c "SELECT status FROM t_job WHERE job_id='$J4'")" FINISHED

# --- stop_all from a partner stops running containers on every node ---------
r=$(submit "$PA" "$(job_json poll '.config.task_params.common.hash_ids_0.sleep_ms = 60000')")
J5=$(job_of "$r")
i=0
while [ "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J5' AND status='RUNNING'")" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect stop_job_running_before_stop "$(psql_db ja -c "SELECT status FROM t_task WHERE job_id='$J5'")" RUNNING
r=$(api POST "$PB" /v1/platform/schedule/job/stop_all "{\"job_id\":\"$J5\"}")
expect stop_all_from_partner_code "$(code_of "$r") $(printf '%s' "$r" | jq -r '.data.stopped_here')" "0 1"
expect stop_all_outcome "$(job_wait "$PA" "$J5" 20)" stopped
i=0
while [ "$(containers_of "$J5")" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect stop_all_containers_gone "$(containers_of "$J5")" 0
expect stop_all_rows_failed "$(psql_db ja -c "SELECT status FROM t_task WHERE job_id='$J5'")$(psql_db jb -c "SELECT status FROM t_task WHERE job_id='$J5'")" FAILEDFAILED
r=$(iapi $B POST "$PA" /v1/interconn/schedule/job/stop_all "{\"job_id\":\"$J5\"}")
expect stop_all_repeated_is_success "$(code_of "$r")" 0

# --- FATE-Flow's clean-up stop of a finished task cancels nothing -----------
r=$(iapi $A POST "$PB" /v1/interconn/schedule/job/stop "{\"job_id\":\"$J\",\"task_name\":\"hash_ids_0\"}")
expect cleanup_stop_code "$(code_of "$r")" 0
expect cleanup_stop_keeps_success "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J' AND status='SUCCESS'")" 2

# --- a job past its timeout fails instead of running for ever -------------------
r=$(submit "$PA" "$(job_json poll '.config.task_params.common.hash_ids_0.sleep_ms = 60000 | .config.job_params.common.timeout_s = 3')")
J13=$(job_of "$r")
expect timeout_job_outcome "$(job_wait "$PA" "$J13" 30)" failed
expect timeout_job_reason "$(psql_db ja -c "SELECT error_text FROM t_schedule_job WHERE job_id='$J13'" | cut -c1-9)" "timed out"
i=0
while [ "$(containers_of "$J13")" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect timeout_job_containers_stopped "$(containers_of "$J13")" 0
for t in '"3"' '0' '-5' 'true'; do
    r=$(submit "$PA" "$(job_json poll ".config.job_params.common.timeout_s = $t")")
    expect "timeout_bad_$(printf '%s' "$t" | cksum | cut -c1-6)" "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg | cut -d: -f1)" "5001 config.job_params.common.timeout_s"
done

# --- approval -----------------------------------------------------------------
r=$(submit "$PA" "$(job_json poll '.config.job_params.common.require_approval = true')")
J6=$(job_of "$r")
expect approval_job_pending "$(psql_db ja -c "SELECT status FROM t_schedule_job WHERE job_id='$J6'")" PENDING
expect approval_wait_reason_shown "$(api GET "$PA" "/v1/platform/schedule/job/status_all?job_id=$J6" | jq -r '.data.wait_reason' | cut -d: -f1)" "awaiting approval"
r=$(iapi $B POST "$PA" /v1/interconn/schedule/job/audit_confirm "{\"job_id\":\"$J6\",\"status\":\"REJECTED\"}")
expect audit_reject_code "$(code_of "$r")" 0
expect audit_rejected_status "$(psql_db ja -c "SELECT status FROM t_schedule_job WHERE job_id='$J6'")" REJECTED
sleep 0.5
expect audit_rejected_nothing_ran "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J6'")" 0
r=$(iapi $B POST "$PA" /v1/interconn/schedule/job/audit_confirm "{\"job_id\":\"$J6\",\"status\":\"READY\"}")
expect audit_after_reject_refused "$(code_of "$r")" 1
r=$(submit "$PA" "$(job_json poll '.config.job_params.common.require_approval = true')")
J7=$(job_of "$r")
r=$(iapi $B POST "$PA" /v1/interconn/schedule/job/audit_confirm "{\"job_id\":\"$J7\",\"status\":\"READY\"}")
expect audit_confirm_runs "$(job_wait "$PA" "$J7" 60)" success

# --- an unreachable party: create fails cleanly, nothing startable ----------
r=$(submit "$PA" "$(job_json poll ".config.role.host = [\"$D\"]")")
expect unreachable_party_refused "$(code_of "$r")" 1
case "$(printf '%s' "$r" | jq -r .msg)" in *"$D"*) pass unreachable_party_message ;; *) fail unreachable_party_message "$r" ;; esac
J8=$(job_of "$r")
expect unreachable_party_job_failed "$(psql_db ja -c "SELECT status || '/' || outcome FROM t_schedule_job WHERE job_id='$J8'")" FINISHED/failed
expect unreachable_party_guest_not_startable "$(psql_db ja -c "SELECT count(*) FROM t_job WHERE job_id='$J8' AND status IN ('READY','RUNNING')")" 0

# --- crash of the partner mid-job --------------------------------------------
r=$(submit "$PA" "$(job_json callback '.config.task_params.common.hash_ids_0.sleep_ms = 2500')")
J9=$(job_of "$r")
i=0
while [ "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J9' AND status='RUNNING'")" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$(gw_pid jb)"
sleep 0.5
node_start jb $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_SCHED_PUSH_RETRY_S=1
gw_ready "$PB" 20
expect partner_crash_outcome "$(job_wait "$PA" "$J9" 60)" success
expect partner_crash_one_launch_per_row "$(psql_db jb -c "SELECT count(*) FROM t_event WHERE entity='task' AND entity_id LIKE '$J9/%' AND from_status='READY' AND to_status='RUNNING'")" 2
expect partner_crash_nothing_running "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE status IN ('READY','RUNNING')")" 0

# --- crash of the scheduler mid-job --------------------------------------------
r=$(submit "$PA" "$(job_json poll '.config.task_params.common.hash_ids_0.sleep_ms = 2000')")
J10=$(job_of "$r")
i=0
while [ "$(psql_db ja -c "SELECT count(*) FROM t_task WHERE job_id='$J10' AND status='RUNNING'")" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$(gw_pid ja)"
sleep 0.3
node_start ja $A "$PA" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20
expect scheduler_crash_outcome "$(job_wait "$PA" "$J10" 60)" success
expect scheduler_crash_one_launch_per_row "$(psql_db ja -c "SELECT count(*) FROM t_event WHERE entity='task' AND entity_id LIKE '$J10/%' AND from_status='READY' AND to_status='RUNNING'")" 2

# --- a push the scheduler missed is pushed again -------------------------------
# Callback mode; the scheduler is down when B's task ends, so B's push of
# SUCCESS fails.  B records what the scheduler acknowledged and pushes again
# (sched.push_retry_s, 1 s here) once the scheduler is back: a FATE-Flow
# scheduler, which never polls in this mode, would otherwise never learn.
r=$(submit "$PA" "$(job_json callback '.config.task_params.common.hash_ids_0.sleep_ms = 1500')")
J11=$(job_of "$r")
brow() { psql_db jb -c "SELECT status FROM t_task WHERE job_id='$J11' AND task_name='hash_ids_0'"; }
backed() { psql_db jb -c "SELECT coalesce((SELECT acked_status FROM t_task_push p JOIN t_task t USING (job_id, task_id) WHERE p.job_id='$J11' AND t.task_name='hash_ids_0'), 'none')"; }
i=0
while [ "$(brow)" != RUNNING ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$(gw_pid ja)"
i=0
while [ "$(brow)" != SUCCESS ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
# (RUNNING may or may not have been acknowledged before the kill)
expect push_missed_while_scheduler_down "$(brow) $(backed | sed 's/^RUNNING$/none/')" "SUCCESS none"
expect push_failure_recorded "$(psql_db jb -c "SELECT count(*) FROM t_task_push WHERE job_id='$J11' AND last_error <> ''")" 1
node_start ja $A "$PA" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20
i=0
while [ "$(backed)" != SUCCESS ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect push_acknowledged_after_scheduler_back "$(backed)" SUCCESS
expect push_retry_job_outcome "$(job_wait "$PA" "$J11" 60)" success

# --- platform stop_all at a partner while the scheduler is down ------------------
# The partner stops its own tasks first (as FATE-Flow does), so the stop
# holds; the answer says the scheduler was not told, and the scheduler, once
# back, sees the stopped task and ends the job.
r=$(submit "$PA" "$(job_json poll '.config.task_params.common.hash_ids_0.sleep_ms = 60000')")
J12=$(job_of "$r")
i=0
while [ "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J12' AND status='RUNNING'")" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$(gw_pid ja)"
r=$(api POST "$PB" /v1/platform/schedule/job/stop_all "{\"job_id\":\"$J12\"}")
expect partner_stop_all_scheduler_down "$(code_of "$r") $(printf '%s' "$r" | jq -r '.data.stopped_here')" "0 1"
expect partner_stop_all_says_scheduler_not_told "$(printf '%s' "$r" | jq -r '.data.scheduler_error | startswith("not reached")')" true
expect partner_stop_all_local_row_failed "$(psql_db jb -c "SELECT status FROM t_task WHERE job_id='$J12'")" FAILED
bcont() { docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.job=$J12" --filter "label=org.bfia.node=$B" | wc -l; }
i=0
while [ "$(bcont)" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect partner_stop_all_local_container_stopped "$(bcont)" 0
node_start ja $A "$PA" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20
expect partner_stop_all_job_ends_at_scheduler "$(job_wait "$PA" "$J12" 60)" failed

# --- idempotent repeats ---------------------------------------------------------
TID=$(psql_db jb -c "SELECT task_id FROM t_task WHERE job_id='$J' AND task_name='hash_ids_0'")
before=$(docker -H "$DOCKER_URL" ps -aq | wc -l)
r=$(iapi $A POST "$PB" /v1/interconn/schedule/task/start "{\"job_id\":\"$J\",\"task_id\":\"$TID\",\"task_name\":\"hash_ids_0\"}")
expect repeated_task_start_on_finished_job "$(code_of "$r")" 5003
r=$(iapi $A POST "$PB" /v1/interconn/schedule/task/poll "{\"task_id\":\"$TID\",\"role\":\"host.0\"}")
expect poll_role_with_index "$(printf '%s' "$r" | jq -r .data.status)" SUCCESS
r=$(iapi $A POST "$PB" /v1/interconn/schedule/task/poll "{\"task_id\":\"no-such-task\",\"role\":\"\"}")
expect poll_unknown_task_refused "$(code_of "$r")" 5002
# The task/poll cache follows every writer of t_task, not only this gateway:
# an operator's UPDATE shows at once (NOTIFY), and so does one made while the
# listening connection was cut.
poll_st() { iapi $A POST "$PB" /v1/interconn/schedule/task/poll "{\"task_id\":\"$TID\",\"role\":\"host.0\"}" | jq -r '.data.status + "/" + .data.error_text'; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }
poll_until() { # WANT TRIES(0.1 s)
    _i=0
    while [ "$(poll_st)" != "$1" ] && [ $_i -lt "$2" ]; do sleep 0.1; _i=$((_i + 1)); done
    poll_st
}
expect poll_cache_listening "$(metric "$PB" gateway_db_listening)" 1
h0=$(metric "$PB" 'gateway_poll_cache_lookups_total{outcome="hit"}')
poll_st >/dev/null
expect poll_cache_answer_before "$(poll_st)" "SUCCESS/"
h1=$(metric "$PB" 'gateway_poll_cache_lookups_total{outcome="hit"}')
check poll_cache_serves_repeats test "$h1" -gt "$h0"
psql_db jb -c "UPDATE t_task SET status='FAILED', error_text='set by an operator' WHERE task_id='$TID'"
expect poll_cache_sees_outside_write "$(poll_until "FAILED/set by an operator" 30)" "FAILED/set by an operator"
psql_db jb -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" >/dev/null
psql_db jb -c "UPDATE t_task SET error_text='changed during the cut' WHERE task_id='$TID'"
expect poll_cache_after_listener_cut "$(poll_until "FAILED/changed during the cut" 100)" "FAILED/changed during the cut"
psql_db jb -c "UPDATE t_task SET status='SUCCESS', error_text='' WHERE task_id='$TID'"
expect poll_cache_restored_row "$(poll_until "SUCCESS/" 30)" "SUCCESS/"
i=0
while [ "$(metric "$PB" gateway_db_listening)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect poll_cache_listening_again "$(metric "$PB" gateway_db_listening)" 1
expect repeated_calls_launch_nothing "$(docker -H "$DOCKER_URL" ps -aq | wc -l)" "$before"
r=$(curl -s -H 'x-node-id: '$B -H 'Content-Type: application/json' --data-binary "{\"task_id\":\"$TID\",\"status\":\"SUCCESS\",\"role\":\"host\"}" "http://127.0.0.1:$PA/v1/interconn/schedule/task/callback")
expect repeated_identical_callback_success "$(code_of "$r")" 0
r=$(curl -s -H 'Content-Type: application/json' --data-binary "{\"task_id\":\"$TID\",\"status\":\"SUCCESS\",\"role\":\"host\"}" "http://127.0.0.1:$PA/v1/interconn/schedule/task/callback")
expect callback_without_node_header_refused "$(code_of "$r")" 5004
# a repeat of the stored job/create (a retry after a lost reply) succeeds;
# any other DAG, config or role set for the same job id is refused
body=$(psql_db jb -c "SELECT json_build_object('job_id', job_id, 'dag', dag, 'config', config, 'flow_id', flow_id, 'scheduler', scheduler) FROM t_job WHERE job_id='$J' LIMIT 1")
r=$(iapi $A POST "$PB" /v1/interconn/schedule/job/create "$body")
expect repeated_job_create_success "$(code_of "$r")" 0
n0=$(psql_db jb -c "SELECT count(*), min(dag::text) = max(dag::text) FROM t_job WHERE job_id='$J'")
r=$(iapi $A POST "$PB" /v1/interconn/schedule/job/create "$(printf '%s' "$body" | jq -c '.config.task_params.host["0"].hash_ids_0.dataset_id = "demo#other"')")
expect changed_job_create_refused "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg | cut -d: -f1)" "5003 job_id"
expect changed_job_create_changes_nothing "$(psql_db jb -c "SELECT count(*), min(dag::text) = max(dag::text) FROM t_job WHERE job_id='$J'")" "$n0"

# --- bad input changes nothing --------------------------------------------------
jobs_before=$(psql_db ja -c "SELECT count(*) FROM t_schedule_job")
bad() { # NAME BODY WANT_CODE
    _r=$(iapi $A POST "$PA" /v1/interconn/schedule/job/create_all "$2")
    expect "bad_create_all_$1" "$(code_of "$_r")" "$3"
}
bad malformed_json '{"job_id":' 5001
bad not_object '[1,2]' 5001
bad missing_job_id "$(jq -c '{dag,config}' deploy/demo/job.json)" 5001
bad missing_dag '{"job_id":"x1","config":{}}' 5001
bad dag_wrong_type '{"job_id":"x2","dag":"yes","config":{}}' 5001
bad cycle "$(jq -c '.job_id="x3" | .dag.components[0].input=[{"type":"dataset","key":"col_stats_0.report"}]' deploy/demo/job.json)" 5001
bad unknown_component "$(jq -c '.job_id="x4" | .dag.components[0].componentName="nope"' deploy/demo/job.json)" 5002
bad unknown_node "$(jq -c '.job_id="x5" | .config.role.host=["JG9999999999999999"]' deploy/demo/job.json)" 5001
bad hostile_job_id "$(jq -c '.job_id="../../etc/passwd"' deploy/demo/job.json)" 5001
bad role_list_number "$(jq -c '.job_id="x6" | .config.role.host=[42]' deploy/demo/job.json)" 5001
bad sync_type_wrong "$(jq -c '.job_id="x7" | .config.job_params.common.sync_type="push"' deploy/demo/job.json)" 5001
big=$(head -c 5000000 /dev/zero | tr '\0' 'a')
r=$(printf '{"job_id":"x8","pad":"%s"}' "$big" | curl -s -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$PA/v1/interconn/schedule/job/create_all")
expect bad_create_all_oversized "$(code_of "$r")" 5005
expect bad_input_changes_nothing "$(psql_db ja -c "SELECT count(*) FROM t_schedule_job")" "$jobs_before"
for ep in job/create job/start task/start job/stop task/poll task/stop; do
    r=$(iapi $A POST "$PB" "/v1/interconn/schedule/$ep" '{"job_id":5,"task_id":[],"task_name":{}}')
    expect "bad_types_$(echo $ep | tr / _)" "$(code_of "$r")" 5001
done
# scheduler-side and platform endpoints: unknown ids, bad values, wrong types
r=$(iapi $B POST "$PA" /v1/interconn/schedule/job/audit_confirm "{\"job_id\":\"$J\",\"status\":\"MAYBE\"}")
expect audit_confirm_bad_status "$(code_of "$r")" 5001
r=$(iapi $B POST "$PA" /v1/interconn/schedule/job/audit_confirm '{"job_id":"unknown-job","status":"READY"}')
expect audit_confirm_unknown_job "$(code_of "$r")" 5002
r=$(iapi $B GET "$PA" "/v1/interconn/schedule/job/status_all?job_id=unknown-job")
expect status_all_unknown_job "$(code_of "$r")" 5002
r=$(api GET "$PA" "/v1/platform/schedule/job/status_all?job_id=unknown-job")
expect platform_status_all_unknown_job "$(code_of "$r")" 5002
r=$(api POST "$PA" /v1/platform/schedule/job/query_job_list '{"flow_id":42}')
expect query_job_list_wrong_type "$(code_of "$r")" 5001
r=$(iapi $B POST "$PA" /v1/interconn/schedule/job/stop_all '{"job_id":"unknown-job"}')
expect stop_all_unknown_job "$(code_of "$r")" 5002
r=$(api POST "$PA" /v1/platform/schedule/job/stop_all '{"job_id":"unknown-job"}')
expect platform_stop_all_unknown_job "$(code_of "$r")" 5002
r=$(api POST "$PA" /v1/platform/schedule/job/stop_task "{\"job_id\":\"$J\"}")
expect stop_task_missing_task_name "$(code_of "$r")" 5001
r=$(api GET "$PA" "/v1/platform/schedule/task/get_log_line?log_level=info")
expect get_log_line_missing_task_id "$(code_of "$r")" 5001
r=$(api POST "$PA" /v1/platform/schedule/job/create_all '{"dag":{"components":[]},"config":{}}')
expect platform_create_all_empty_dag "$(code_of "$r")" 5001
expect scheduler_state_unchanged_by_bad_calls "$(psql_db ja -c "SELECT count(*) FROM t_schedule_job")" "$jobs_before"
r=$(iapi $A POST "$PB" /v1/interconn/schedule/job/start '{"job_id":"unknown-job"}')
expect job_start_unknown_job "$(code_of "$r")" 5002
r=$(api POST "$PB" /v1/platform/schedule/task/callback '{"task_id":"unknown","status":"SUCCESS","role":"host"}')
expect container_callback_unknown_task "$(code_of "$r")" 5002
r=$(api POST "$PB" /v1/platform/schedule/task/callback "{\"task_id\":\"$TID\",\"status\":\"DONE\",\"role\":\"host\"}")
expect container_callback_bad_status "$(code_of "$r")" 5001
r=$(api POST "$PB" /v1/platform/schedule/task/callback "{\"task_id\":\"$TID\",\"status\":\"SUCCESS\",\"role\":\"host\"}")
expect container_callback_finished_task_refused "$(code_of "$r")" 5003

# --- a party that becomes unreachable after create ------------------------------
# The scheduler shows why the job waits, fails it after sched.party_deadline_s,
# and tells the lost party to stop once it is back (sched.stop_retry_s).
gw_stop ja
node_start ja $A "$PA" "$R" GW_SCHED_POLL_MS=200 GW_SCHED_PARTY_DEADLINE_S=4 GW_SCHED_STOP_RETRY_S=1
gw_ready "$PA" 20
r=$(submit "$PA" "$(job_json poll '.config.task_params.common.hash_ids_0.sleep_ms = 30000')")
J11=$(job_of "$r")
i=0
while [ "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J11' AND status='RUNNING'")" != 1 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$(gw_pid jb)"
i=0
while ! api GET "$PA" "/v1/platform/schedule/job/status_all?job_id=$J11" | grep -q "node $B unreachable" && [ $i -lt 40 ]; do sleep 0.1; i=$((i + 1)); done
case "$(api GET "$PA" "/v1/platform/schedule/job/status_all?job_id=$J11")" in *"node $B unreachable"*) pass lost_party_wait_reason_visible ;; *) fail lost_party_wait_reason_visible "no reason naming $B" ;; esac
expect lost_party_job_fails "$(job_wait "$PA" "$J11" 30)" failed
expect lost_party_local_task_stopped "$(psql_db ja -c "SELECT count(*) FROM t_task WHERE job_id='$J11' AND status IN ('READY','RUNNING')")" 0
expect lost_party_stop_not_acked "$(psql_db ja -c "SELECT stop_acked ? '$B' FROM t_schedule_job WHERE job_id='$J11'")" f
node_start jb $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_SCHED_PUSH_RETRY_S=1
gw_ready "$PB" 20
i=0
while [ "$(psql_db jb -c "SELECT status FROM t_job WHERE job_id='$J11'")" != FINISHED ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect lost_party_stopped_when_back "$(psql_db jb -c "SELECT status FROM t_job WHERE job_id='$J11'")" FINISHED
expect lost_party_task_not_running "$(psql_db jb -c "SELECT count(*) FROM t_task WHERE job_id='$J11' AND status IN ('READY','RUNNING')")" 0
expect lost_party_stop_acked "$(psql_db ja -c "SELECT stop_done FROM t_schedule_job WHERE job_id='$J11'")" t
i=0
while [ "$(docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.job=$J11" | wc -l)" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect lost_party_containers_gone "$(docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.job=$J11" | wc -l)" 0

for n in ja jb jc; do
    gw_stop $n
    expect "${n}_exit_clean" "$GW_RC" 0
    check "${n}_sanitizer_clean" sanitizer_clean $n
done

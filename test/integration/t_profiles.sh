# t_profiles.sh - wire profiles: our scheduler with a partner that speaks
# the kuscia profile (code 200, data null) and one that speaks fate-flow
# (code 0, no data), both scripted (test/support/fakepeer.c); and those
# callers reading our status_all.
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started"
    exit 0
fi
A=JG0100001100000010 K=JG0100001100000070 F=JG0100001100000080 Q=JG0100001100000060
PA=$(free_port) PK=$(free_port) PF=$(free_port) PQ=$(free_port)
R="$T_ROOT/routes_p.yaml"
routes_file "$R" $A "$PA"
printf '%s:\n  host: 127.0.0.1\n  port: %s\n  profile: kuscia\n' $K "$PK" >>"$R"
printf '%s:\n  host: 127.0.0.1\n  port: %s\n  profile: fate-flow\n' $F "$PF" >>"$R"
printf '%s:\n  host: 127.0.0.1\n  port: %s\n  profile: kuscia\n' $Q "$PQ" >>"$R"
"$OUT/tools/fakepeer" "$PK" kuscia "$T_ROOT/kuscia.log" &
KPID=$!
"$OUT/tools/fakepeer" "$PF" fate-flow "$T_ROOT/ff.log" &
FPID=$!
"$OUT/tools/fakepeer" "$PQ" kuscia-refuse "$T_ROOT/refuse.log" &
QPID=$!
new_db pa
node_start pa $A "$PA" "$R" GW_SCHED_POLL_MS=200 GW_SCHED_PARTY_DEADLINE_S=3
gw_ready "$PA" 20
expect node_ready "$?" 0
expect provider "$(code_of "$(register_demo "$PA")")" 0
expect dataset "$(code_of "$(upload "$PA" demo guest deploy/demo/data/guest.csv)")" 0

for peer in K F; do
    eval node=\$$peer
    r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll ".config.role.host = [\"$node\"]")")
    expect "job_with_${peer}_created" "$(code_of "$r")" 0
    J=$(printf '%s' "$r" | jq -r .data.job_id)
    expect "job_with_${peer}_outcome" "$(job_wait "$PA" "$J" 60)" success
    eval "J_$peer=$J"
done
klog="$T_ROOT/kuscia.log"
expect kuscia_got_job_create "$(grep -c "/v1/interconn/schedule/job/create\"" "$klog")" 1
expect kuscia_got_task_start_for_both_tasks "$(grep -c '/v1/interconn/schedule/task/start' "$klog")" 2
expect kuscia_sees_our_node_id "$(jq -r 'select(.path | contains("job/create")) | .x_node_id' "$klog")" $A
expect kuscia_create_dag_code_and_module_name "$(jq -r 'select(.path | contains("job/create")) | .body | fromjson | [.dag.components[] | (.code == .provider and .module_name == .componentName)] | all' "$klog")" true
expect kuscia_create_dag_code_is_provider "$(jq -r 'select(.path | contains("job/create")) | .body | fromjson | .dag.components[0].code' "$klog")" bfia-demo
expect kuscia_calls_carry_protocol_marker "$(jq -r '.protocol' "$klog" | sort -u | tr '\n' ' ')" "bfia "
expect fate_flow_create_dag_unchanged "$(jq -r 'select(.path | contains("job/create")) | .body | fromjson | [.dag.components[] | has("code")] | any' "$T_ROOT/ff.log")" false
expect kuscia_create_body_strings_not_null "$(jq -r 'select(.path | contains("job/create")) | .body | fromjson | [.flow_id, .old_job_id] | map(type) | join(",")' "$klog")" "string,string"
expect kuscia_create_root_input_named "$(jq -r 'select(.path | contains("job/create")) | .body | fromjson | .config.task_params.host["0"].hash_ids_0 | .namespace + "/" + .name' "$klog")" "demo/host"
expect kuscia_got_poll_with_its_role "$(jq -r 'select(.path | contains("task/poll")) | .body | fromjson | "[" + .role + "]"' "$klog" | sort -u)" "[host]"
expect kuscia_task_ids_dns_safe "$(jq -r 'select(.path | contains("task/start")) | .body | fromjson | .task_id | test("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$") and (length <= 63)' "$klog" | sort -u)" true
expect fateflow_got_poll_with_empty_role "$(jq -r 'select(.path | contains("task/poll")) | .body | fromjson | "[" + .role + "]"' "$T_ROOT/ff.log" | sort -u)" "[]"

# a third-party scheduler with a FATE-Flow or Kuscia party is refused: those
# peers send stop_all and status_all to the initiator (spec §5.4)
for peer in K F; do
    eval node=\$$peer
    n0=$(psql_db pa -c "SELECT count(*) FROM t_schedule_job")
    r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll ".config.role.host = [\"$node\"] | .config.job_params.common.scheduler = \"$Q\"")")
    expect "third_party_scheduler_with_${peer}_refused" "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg | cut -d: -f1)" "5001 config.job_params.common.scheduler"
    expect "third_party_scheduler_with_${peer}_stores_nothing" "$(psql_db pa -c "SELECT count(*) FROM t_schedule_job")" "$n0"
done

# Kuscia passes parameters as environment variables: a list or null value
# would be accepted there and never run, so it is refused here, named
for f in '.config.task_params.common.hash_ids_0.salt = ["a","b"]' '.config.task_params.host["0"].hash_ids_0.salt = null'; do
    n0=$(psql_db pa -c "SELECT count(*) FROM t_schedule_job")
    r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll ".config.role.host = [\"$K\"] | $f")")
    expect "kuscia_param_$(printf '%s' "$f" | cksum | cut -c1-6)_refused" "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg | grep -o 'hash_ids_0.salt: a [a-z]* value')" "5001 hash_ids_0.salt: a $(case $f in *null) echo null ;; *) echo list ;; esac) value"
    expect "kuscia_param_$(printf '%s' "$f" | cksum | cut -c1-6)_stores_nothing" "$(psql_db pa -c "SELECT count(*) FROM t_schedule_job")" "$n0"
done

# a party that answers every poll with a refusal: the reason shows at once
# and the task fails after sched.party_deadline_s (3 s here), not never
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll ".config.role.host = [\"$Q\"]")")
JQ=$(printf '%s' "$r" | jq -r '.data.job_id // ""')
expect refusing_party_job_fails "$(job_wait "$PA" "$JQ" 60)" failed
expect refusing_party_reason_shown "$(psql_db pa -c "SELECT count(*) > 0 FROM t_schedule_task WHERE job_id='$JQ' AND node_id='$Q' AND status='FAILED' AND error_text LIKE '%refused%failed to find the task%'")" t

# those peers reading our scheduler
r=$(curl -s -H "X-Node-Id: $K" "http://127.0.0.1:$PA/v1/interconn/schedule/job/status_all?job_id=$J_K")
expect kuscia_caller_gets_code_200 "$(code_of "$r")" 200
expect kuscia_caller_data_only_task_map "$(printf '%s' "$r" | jq -c '.data | [keys[], (.status | type)]')" '["status","object"]'
r=$(curl -s -X GET -H "x_node_id: $F" -H 'Content-Type: application/json' --data-binary "{\"job_id\":\"$J_F\"}" "http://127.0.0.1:$PA/v1/interconn/schedule/job/status_all")
expect fateflow_caller_code_0 "$(code_of "$r")" 0
expect fateflow_caller_keyed_by_task_name "$(printf '%s' "$r" | jq -r '.data.job_status + " " + .data.status.hash_ids_0')" "FINISHED SUCCESS"
r=$(curl -s -H "X-Node-Id: $K" -H 'Content-Type: application/json' -d '{"job_id":"no-such"}' "http://127.0.0.1:$PA/v1/interconn/schedule/job/status_all")
expect kuscia_caller_error_not_200 "$(code_of "$r")" 5002
r=$(curl -s -H "x-node-id: $K" -H 'Content-Type: application/json' -d '{"task_id":"x","role":"host"}' "http://127.0.0.1:$PA/v1/interconn/schedule/task/poll")
expect kuscia_caller_error_data_object "$(printf '%s' "$r" | jq -r '.data | type')" object

# routes edited through the platform API take effect without a restart
Z=JG0100001100000090
r=$(api POST "$PA" /v1/platform/route/set "{\"node_id\":\"$Z\",\"host\":\"127.0.0.1\",\"port\":$PF,\"profile\":\"fate-flow\"}")
expect route_set "$(code_of "$r")" 0
expect route_set_visible "$(api GET "$PA" "/v1/platform/route/get?node_id=$Z" | jq -r '.data.profile + " " + .data.auth')" "fate-flow off"
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll ".config.role.host = [\"$Z\"]")")
expect route_set_usable_at_once "$(job_wait "$PA" "$(printf '%s' "$r" | jq -r .data.job_id)" 60)" success
n0=$(psql_db pa -c "SELECT count(*) FROM t_route")
for b in '{"node_id":"X1","host":"127.0.0.1","port":70000}' '{"node_id":"X2","host":"a/b","port":80}' \
         '{"node_id":"X3","host":"h","port":80,"profile":"grpc"}' '{"host":"h","port":80}' \
         '{"node_id":"../x","host":"h","port":80}' '{"node_id":"X4","host":"h","port":"eighty"}'; do
    r=$(api POST "$PA" /v1/platform/route/set "$b")
    expect "route_set_bad_$(printf '%s' "$b" | md5sum | cut -c1-6)" "$(code_of "$r")" 5001
done
expect route_set_bad_changes_nothing "$(psql_db pa -c "SELECT count(*) FROM t_route")" "$n0"
expect route_delete "$(code_of "$(api POST "$PA" /v1/platform/route/delete "{\"node_id\":\"$Z\"}")")" 0
expect route_delete_unknown "$(code_of "$(api POST "$PA" /v1/platform/route/delete "{\"node_id\":\"$Z\"}")")" 5002
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll ".config.role.host = [\"$Z\"]")")
expect route_deleted_unusable_at_once "$(code_of "$r")" 5001

kill "$KPID" "$FPID" "$QPID" 2>/dev/null
wait "$KPID" "$FPID" "$QPID" 2>/dev/null
gw_stop pa
expect pa_exit_clean "$GW_RC" 0
check pa_sanitizer_clean sanitizer_clean pa

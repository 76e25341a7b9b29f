# t_hostile.sh - who may ask what (issue 12): hostile partners against two
# of our gateways on loopback.
#
# A (scheduler, guest) and B (partner, host) run real jobs.  H is a node in
# both route tables with its own key pinned there: it signs every request
# correctly and is a party of no job.  B is also used as a hostile party of
# a job it does belong to.  Every attempt must be refused with a non-zero
# code naming the reason, with the stored state and the containers on the
# engine unchanged.
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started"
    exit 0
fi
A=JG0100001100000410 B=JG0100001100000420 H=JG0100001100000490 F=JG0100001100000480
PA=$(free_port) PB=$(free_port) PF=$(free_port)
KH="$T_ROOT/hostile.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KH" 2>/dev/null
JWK=$("$CTL_BIN" key jwk "$KH")
R="$T_ROOT/hostile-routes.yaml"
{
    printf '%s:\n  host: 127.0.0.1\n  port: %s\n%s:\n  host: 127.0.0.1\n  port: %s\n' $A "$PA" $B "$PB"
    printf '%s:\n  host: 127.0.0.1\n  port: 9\n  key: %s\n' $H "$(printf '%s' "$JWK" | jq -c -R .)"
    # an unsigned (auth: off) FATE-Flow peer: what can a request with no node id do?
    printf '%s:\n  host: 127.0.0.1\n  port: %s\n  profile: fate-flow\n  auth: off\n' $F "$PF"
} >"$R"
new_db ha
new_db hb
node_start ha $A "$PA" "$R" GW_SCHED_POLL_MS=200
node_start hb $B "$PB" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20 && gw_ready "$PB" 20
expect nodes_ready "$?" 0
for p in $PA $PB; do register_demo "$p" >/dev/null; done
upload "$PA" demo guest deploy/demo/data/guest.csv >/dev/null
upload "$PB" demo host deploy/demo/data/host.csv >/dev/null
upload "$PA" demo other deploy/demo/data/host.csv >/dev/null
KA="$T_ROOT/ha/data/keys/node-es256.pem"
KB="$T_ROOT/hb/data/keys/node-es256.pem"

ourjob() { job_json "$1" ".config.initiator.node_id = \"$A\" | .config.role.guest = [\"$A\"] | .config.role.host = [\"$B\"] | ${2:-.}"; }
submit() { api POST "$PA" /v1/platform/schedule/job/create_all "$1"; }
job_of() { printf '%s' "$1" | jq -r '.data.job_id // ""'; }
msg_of() { printf '%s' "$1" | jq -r '.msg // ""'; }
containers() { docker -H "$DOCKER_URL" ps -aq --filter "label=org.bfia.node=$1" | wc -l; }
# as NODE KEY PORT TARGET PATH BODY: a request signed by NODE with KEY
as() {
    _n=$1 _k=$2 _p=$3 _t=$4 _path=$5
    printf '%s' "$6" >"$T_ROOT/h.body"
    "$CTL_BIN" request sign --key "$_k" --from "$_n" --to "$_t" POST "$_path" "$T_ROOT/h.body" >"$T_ROOT/h.hdr"
    set -- -s -H 'Content-Type: application/json' -H "x-node-id: $_n" --data-binary @"$T_ROOT/h.body" "http://127.0.0.1:$_p$_path"
    while IFS= read -r _h; do set -- "$@" -H "$_h"; done <"$T_ROOT/h.hdr"
    curl "$@"
}
refused() { # NAME RESPONSE CODE WORDS
    if [ "$(code_of "$2")" = "$3" ] && printf '%s' "$(msg_of "$2")" | grep -q -- "$4"; then
        pass "$1"
    else
        fail "$1" "got $2, want code $3 naming '$4'"
    fi
}
state_a() { psql_db ha -c "SELECT count(*), coalesce(string_agg(job_id || status, ',' ORDER BY job_id), '') FROM t_schedule_job" ; psql_db ha -c "SELECT count(*), coalesce(string_agg(job_id || role || status, ',' ORDER BY job_id, role), '') FROM t_job"; psql_db ha -c "SELECT count(*) FROM t_task"; }
state_b() { psql_db hb -c "SELECT count(*), coalesce(string_agg(job_id || role || status, ',' ORDER BY job_id, role), '') FROM t_job"; psql_db hb -c "SELECT count(*), coalesce(string_agg(task_id || status, ','), '') FROM t_task"; }

# a job awaiting approval: PENDING on A, READY (not started) on B
r=$(submit "$(ourjob poll '.config.job_params.common.require_approval = true')")
JP=$(job_of "$r")
expect pending_job_created "$(code_of "$r")" 0
# a job that runs: poll mode, its first task sleeps so it is RUNNING for a while
r=$(submit "$(ourjob poll '.config.task_params.common.hash_ids_0.sleep_ms = 6000')")
JR=$(job_of "$r")
i=0
while [ "$(psql_db hb -c "SELECT count(*) FROM t_task WHERE job_id='$JR' AND status='RUNNING'")" = 0 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
expect running_job_runs_on_b "$(psql_db hb -c "SELECT count(*) > 0 FROM t_task WHERE job_id='$JR' AND status='RUNNING'")" t
TR=$(psql_db hb -c "SELECT task_id FROM t_task WHERE job_id='$JR' LIMIT 1")
SA0=$(state_a)
SB0=$(state_b)
CB0=$(containers $B)

# 1. job hijack: a second job/create for a job B runs, with an extra role,
# by a party of the job (A's peer B sending to A) and by H
body=$(psql_db hb -c "SELECT json_build_object('job_id', job_id, 'dag', dag, 'config', config, 'flow_id', flow_id, 'scheduler', scheduler) FROM t_job WHERE job_id='$JR' LIMIT 1")
hijack=$(printf '%s' "$body" | jq -c --arg a "$A" '.config.role.arbiter = [$a] | .config.task_params.guest["0"].hash_ids_0.dataset_id = "demo#other"')
refused hijack_by_party_not_scheduler "$(as $B "$KB" "$PA" $A /v1/interconn/schedule/job/create "$hijack")" 5004 "is not.*scheduler\|cannot create a job here"
hijack_claims=$(printf '%s' "$hijack" | jq -c --arg b "$B" '.scheduler = $b')
refused hijack_claiming_scheduler "$(as $B "$KB" "$PA" $A /v1/interconn/schedule/job/create "$hijack_claims")" 5004 "not the scheduler of job"
refused hijack_by_stranger "$(as $H "$KH" "$PB" $B /v1/interconn/schedule/job/create "$(printf '%s' "$body" | jq -c --arg h "$H" '.scheduler = $h')")" 5004 "scheduler"
# even the job's own scheduler cannot change a created job
refused hijack_by_scheduler "$(as $A "$KA" "$PB" $B /v1/interconn/schedule/job/create "$(printf '%s' "$hijack" | jq -c --arg a "$A" '.scheduler = $a')")" 5003 "job_id"
expect hijack_identical_repeat_ok "$(code_of "$(as $A "$KA" "$PB" $B /v1/interconn/schedule/job/create "$body")")" 0

# 2. task/start from anyone but the scheduler, or before the job started
ts() { printf '{"job_id":"%s","task_id":"%s","task_name":"%s"}' "$1" "$2" "$3"; }
refused task_start_by_stranger "$(as $H "$KH" "$PB" $B /v1/interconn/schedule/task/start "$(ts "$JP" task-evil1 hash_ids_0)")" 5004 "not the scheduler of job"
refused task_start_by_party "$(as $B "$KB" "$PA" $A /v1/interconn/schedule/task/start "$(ts "$JP" task-evil2 hash_ids_0)")" 5004 "not the scheduler of job"
refused task_start_before_approval "$(as $A "$KA" "$PB" $B /v1/interconn/schedule/task/start "$(ts "$JP" task-evil3 hash_ids_0)")" 5003 "not been started"
refused task_start_second_id "$(as $A "$KA" "$PB" $B /v1/interconn/schedule/task/start "$(ts "$JR" task-evil4 hash_ids_0)")" 5003 "already started"
refused task_start_not_in_dag "$(as $A "$KA" "$PB" $B /v1/interconn/schedule/task/start "$(ts "$JR" task-evil5 no_such_task)")" 5002 "task_name"

# 3. party checks on the scheduler side and the partner side
refused stop_all_by_stranger "$(as $H "$KH" "$PA" $A /v1/interconn/schedule/job/stop_all "{\"job_id\":\"$JR\"}")" 5004 "not a party of job"
refused audit_by_stranger "$(as $H "$KH" "$PA" $A /v1/interconn/schedule/job/audit_confirm "{\"job_id\":\"$JP\",\"status\":\"READY\"}")" 5004 "not a party of job"
refused status_all_by_stranger "$(as $H "$KH" "$PA" $A /v1/interconn/schedule/job/status_all "{\"job_id\":\"$JR\"}")" 5004 "not a party of job"
refused callback_by_stranger "$(as $H "$KH" "$PA" $A /v1/interconn/schedule/task/callback "{\"task_id\":\"$TR\",\"status\":\"FAILED\"}")" 5004 "not a party of job"
refused task_stop_by_stranger "$(as $H "$KH" "$PB" $B /v1/interconn/schedule/task/stop "{\"task_id\":\"$TR\"}")" 5004 "not the scheduler of job"
refused task_stop_by_party "$(as $B "$KB" "$PA" $A /v1/interconn/schedule/task/stop "{\"task_id\":\"$TR\"}")" 5004 "not the scheduler of job"
refused job_stop_by_stranger "$(as $H "$KH" "$PB" $B /v1/interconn/schedule/job/stop "{\"job_id\":\"$JR\"}")" 5004 "not the scheduler of job"
refused job_start_by_stranger "$(as $H "$KH" "$PB" $B /v1/interconn/schedule/job/start "{\"job_id\":\"$JP\"}")" 5004 "not the scheduler of job"
refused poll_by_stranger "$(as $H "$KH" "$PB" $B /v1/interconn/schedule/task/poll "{\"task_id\":\"$TR\",\"role\":\"\"}")" 5004 "neither the scheduler nor a party"

# 4. a forged initiator: H has A schedule a job between A and B, naming A
# (or B) as the initiator, or naming itself without playing a role
forged=$(ourjob poll | jq -c '.job_id = "hostile-forged-1" | .flow_id = "" | .old_job_id = ""')
refused forged_initiator "$(as $H "$KH" "$PA" $A /v1/interconn/schedule/job/create_all "$forged")" 5004 "initiator"
refused forged_initiator_b "$(as $H "$KH" "$PA" $A /v1/interconn/schedule/job/create_all "$(printf '%s' "$forged" | jq -c --arg b "$B" '.config.initiator.node_id = $b')")" 5004 "initiator"
refused initiator_plays_no_role "$(as $H "$KH" "$PA" $A /v1/interconn/schedule/job/create_all "$(printf '%s' "$forged" | jq -c --arg h "$H" '.config.initiator.node_id = $h')")" 5001 "config.initiator.node_id"

# 5. unidentified callers: no node id at all, from an address two unsigned-
# capable routes do not share... here every route is on 127.0.0.1, so an
# anonymous request can be pinned on the one auth-off route (F), and F is a
# party of nothing
anon() { curl -s -H 'Content-Type: application/json' -d "$2" "http://127.0.0.1:$1$3"; }
refused anonymous_audit_reject "$(anon "$PA" "{\"job_id\":\"$JP\",\"status\":\"REJECTED\"}" /v1/interconn/schedule/job/audit_confirm)" 5004 "$F is not a party"
refused anonymous_poll "$(anon "$PB" "{\"task_id\":\"$TR\",\"role\":\"\"}" /v1/interconn/schedule/task/poll)" 5004 "$F is neither"
refused unknown_named_caller "$(curl -s -H 'x-node-id: JG0100001100009999' -H 'Content-Type: application/json' -d "{\"job_id\":\"$JP\",\"status\":\"READY\"}" "http://127.0.0.1:$PA/v1/interconn/schedule/job/audit_confirm")" 5004 "not in this node's route table"

# nothing of the above changed anything
expect hostile_changed_nothing_on_a "$(state_a)" "$SA0"
expect hostile_changed_nothing_on_b "$(state_b)" "$SB0"
expect hostile_started_no_container "$(containers $B)" "$CB0"
expect pending_job_still_pending "$(psql_db ha -c "SELECT status FROM t_schedule_job WHERE job_id='$JP'")" PENDING

# approval is this node's to give: its platform API, or a party
expect audit_by_party_accepted "$(code_of "$(as $B "$KB" "$PA" $A /v1/interconn/schedule/job/audit_confirm "{\"job_id\":\"$JP\",\"status\":\"REJECTED\"}")")" 0
expect audit_by_party_rejected_job "$(psql_db ha -c "SELECT status FROM t_schedule_job WHERE job_id='$JP'")" REJECTED
expect running_job_still_succeeds "$(job_wait "$PA" "$JR" 90)" success

# 6. resources: this node's policy, not the job's
n0=$(psql_db hb -c "SELECT count(*) FROM t_job")
for f in '{"memory":-5,"cpu":-1}' '{"memory":1e12}' '{"cpu":"x"}' '{"cpu":500}' '{"memory_mb":1}'; do
    r=$(submit "$(ourjob poll ".config.job_params.host[\"0\"].resources = $f")")
    refused "resources_$(printf '%s' "$f" | cksum | cut -c1-6)_refused" "$r" 1 "config.job_params.host.0.resources"
done
expect resources_refused_nothing_stored_on_b "$(psql_db hb -c "SELECT count(*) FROM t_job")" "$n0"
r=$(submit "$(ourjob poll '.config.job_params.guest["0"].resources = {"memory":-5}')")
refused resources_own_role_refused "$r" 1 "config.job_params.guest.0.resources.memory"

# 7. malformed configs, refused at create naming the field, nothing stored
n0=$(psql_db ha -c "SELECT count(*) FROM t_schedule_job")
bad() { # NAME FILTER FIELD
    r=$(submit "$(ourjob poll "$2")")
    refused "$1" "$r" 5001 "$3"
}
bad role_index_letter '.config.task_params.host.a = .config.task_params.host["0"] | del(.config.task_params.host["0"])' "config.task_params.host.a"
bad role_index_beyond '.config.task_params.host["3"] = .config.task_params.host["0"]' "config.task_params.host.3"
bad task_params_missing 'del(.config.task_params)' "config.task_params"
bad params_unknown_component '.config.task_params.common.ghost = {"a":1}' "config.task_params.common.ghost"
bad same_node_twice ".config.role.host = [\"$B\",\"$B\"]" "config.role.host\[1\]"
bad param_key_equals '.config.task_params.common.hash_ids_0["k=v"] = "x"' "parameter name 'k=v'"
bad param_key_newline '.config.task_params.common.hash_ids_0["k\nv"] = "x"' "parameter name"
expect malformed_nothing_stored "$(psql_db ha -c "SELECT count(*) FROM t_schedule_job")" "$n0"
r=$(curl -s -H 'Content-Type: application/json' --data-binary "$(ourjob poll | jq -c '.flow_id = "a\u0000b"')" "http://127.0.0.1:$PA/v1/platform/schedule/job/create_all")
refused nul_in_id_refused "$r" 5001 "flow_id: a string holds"
# 50,000 roles in one body: over the endpoint's cap (and the 64-party bound)
jq -c '.config.role.host = [range(50000) | "JG01000011" + (tostring | ("000000" + .)[-8:])]' deploy/demo/job.json >"$T_ROOT/big.json"
pids=""
for i in 1 2 3 4; do
    curl -s -H 'Content-Type: application/json' --data-binary @"$T_ROOT/big.json" "http://127.0.0.1:$PA/v1/platform/schedule/job/create_all" >"$T_ROOT/big.$i" &
    pids="$pids $!"
done
wait $pids
expect huge_roles_refused "$(cat "$T_ROOT"/big.? | jq -r .code | sort -u | tr '\n' ' ')" "5005 "
jq -c --arg a "$A" '.config.role.host = [range(65) | "JG01000011" + (tostring | ("000000" + .)[-8:])] | .config.role.guest = [$a] | .config.initiator.node_id = $a' deploy/demo/job.json >"$T_ROOT/many.json"
refused many_parties_refused "$(curl -s -H 'Content-Type: application/json' --data-binary @"$T_ROOT/many.json" "http://127.0.0.1:$PA/v1/platform/schedule/job/create_all")" 5001 "config.role: more than 64 parties"
expect still_serving "$(http_status "http://127.0.0.1:$PA/healthz")" 200
expect malformed_still_nothing_stored "$(psql_db ha -c "SELECT count(*) FROM t_schedule_job")" "$n0"

gw_stop ha
expect ha_exit_clean "$GW_RC" 0
check ha_sanitizer_clean sanitizer_clean ha
gw_stop hb
expect hb_exit_clean "$GW_RC" 0
check hb_sanitizer_clean sanitizer_clean hb

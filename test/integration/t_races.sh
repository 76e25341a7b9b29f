# t_races.sh - replies that arrive in an awkward order, under ASan: the
# scheduler must never touch a job it has already forgotten.
#
# Scripted partners (test/support/fakepeer.c, fate-flow profile: routes
# with auth off) refuse or delay task/start; the scheduler is one of our
# gateways.  Each case used to abort the sanitizer build (heap
# use-after-free in on_task_started / on_task_row_done, or the error path
# of a third-party scheduler that is not in the route table); now the node
# stays up, the job ends in its true outcome, and the process exits clean.
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started"
    exit 0
fi
A=JG0100001100000010 B=JG0100001100000020
X=JG0100001100000071 Y=JG0100001100000072 Z=JG0100001100000073
PA=$(free_port) PB=$(free_port) PX=$(free_port) PY=$(free_port) PZ=$(free_port)
R="$T_ROOT/routes_r.yaml"
routes_file "$R" $A "$PA" $B "$PB"
for n in X Y Z; do
    eval "printf '%s:\n  host: 127.0.0.1\n  port: %s\n  profile: fate-flow\n  auth: off\n' \$$n \$P$n" >>"$R"
done
# X refuses task/start at once; Y and Z answer it 3 s late (and Z's polls
# say RUNNING, so only a stop can end its jobs)
"$OUT/tools/fakepeer" "$PX" fate-flow "$T_ROOT/x.log" "task/start=refuse" &
XPID=$!
"$OUT/tools/fakepeer" "$PY" fate-flow "$T_ROOT/y.log" "task/start=delay:3000" &
YPID=$!
"$OUT/tools/fakepeer" "$PZ" fate-flow "$T_ROOT/z.log" "task/start=delay:3000,task/poll=status:RUNNING" &
ZPID=$!
new_db ra
new_db rb
node_start ra $A "$PA" "$R" GW_SCHED_POLL_MS=200
node_start rb $B "$PB" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20 && gw_ready "$PB" 20
expect nodes_ready "$?" 0
expect provider_a "$(code_of "$(register_demo "$PA")")" 0
expect provider_b "$(code_of "$(register_demo "$PB")")" 0
expect dataset_a "$(code_of "$(upload "$PA" demo guest deploy/demo/data/guest.csv)")" 0
expect dataset_b "$(code_of "$(upload "$PB" demo host deploy/demo/data/host.csv)")" 0

submit() { api POST "$1" /v1/platform/schedule/job/create_all "$2"; }
job_of() { printf '%s' "$1" | jq -r '.data.job_id // ""'; }
alive() { [ "$(http_status "http://127.0.0.1:$1/healthz")" = 200 ]; }
# revive: a scheduler that died in one case is started again (its log keeps
# the report, so ra_sanitizer_clean fails), so every case shows on its own
revive() {
    alive "$PA" && return 0
    wait "$(gw_pid ra)" 2>/dev/null
    node_start ra $A "$PA" "$R" GW_SCHED_POLL_MS=200
    gw_ready "$PA" 20
}

# 1. the first task goes to two partners: X refuses task/start at once (the
# job fails and ends), Y answers 3 s later, about a job already finished
r=$(submit "$PA" "$(job_json poll ".config.role.host = [\"$X\", \"$Y\"]")")
J1=$(job_of "$r")
expect refuse_and_late_created "$(code_of "$r")" 0
expect refuse_and_late_outcome "$(job_wait "$PA" "$J1" 30)" failed
sleep 3.5
check refuse_and_late_node_alive alive "$PA"
expect refuse_and_late_reason "$(psql_db ra -c "SELECT error_text LIKE '%refused by node $X%' FROM t_schedule_job WHERE job_id='$J1'")" t

revive
# 2. a platform stop_all 0.8 s into a poll-mode job whose partner answers
# task/start slowly: the answer arrives after the job was stopped
r=$(submit "$PA" "$(job_json poll ".config.role.host = [\"$Z\"]")")
J2=$(job_of "$r")
sleep 0.8
expect stop_during_start_accepted "$(code_of "$(api POST "$PA" /v1/platform/schedule/job/stop_all "{\"job_id\":\"$J2\"}")")" 0
sleep 3.5
check stop_during_start_node_alive alive "$PA"
expect stop_during_start_outcome "$(job_wait "$PA" "$J2" 10)" stopped
expect stop_during_start_late_answer_changes_nothing "$(psql_db ra -c "SELECT count(*) FROM t_schedule_task WHERE job_id='$J2' AND status IN ('PENDING','READY','RUNNING')")" 0
expect stop_during_start_slow_party_row_failed "$(psql_db ra -c "SELECT status FROM t_schedule_task WHERE job_id='$J2' AND node_id='$Z' AND task_name='hash_ids_0'")" FAILED

revive
# 3. the partner itself sends stop_all while its own task/start is pending
r=$(submit "$PA" "$(job_json callback ".config.role.host = [\"$Z\"]")")
J3=$(job_of "$r")
sleep 0.8
r=$(curl -s -H "x-node-id: $Z" -H 'Content-Type: application/json' -d "{\"job_id\":\"$J3\"}" "http://127.0.0.1:$PA/v1/interconn/schedule/job/stop_all")
expect partner_stop_during_start_accepted "$(code_of "$r")" 0
sleep 3.5
check partner_stop_during_start_node_alive alive "$PA"
expect partner_stop_during_start_outcome "$(job_wait "$PA" "$J3" 10)" stopped

revive
# 4. a third-party scheduler that is not in the route table: refused, named
n0=$(psql_db ra -c "SELECT count(*) FROM t_schedule_job")
r=$(submit "$PA" "$(job_json poll '.config.job_params.common.scheduler = "JG0100001100009999"')")
expect unknown_scheduler_refused "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg)" \
    "5001 config.job_params.common.scheduler: no route to node JG0100001100009999"
check unknown_scheduler_node_alive alive "$PA"
expect unknown_scheduler_stores_nothing "$(psql_db ra -c "SELECT count(*) FROM t_schedule_job")" "$n0"

revive
# 5. fifty two-party jobs between two of our nodes, each stopped at once
# while its fan-out, task/start calls and polls are in flight
i=0
while [ $i -lt 50 ]; do
    r=$(submit "$PA" "$(job_json poll)")
    j=$(job_of "$r")
    [ -n "$j" ] && api POST "$PA" /v1/platform/schedule/job/stop_all "{\"job_id\":\"$j\"}" >/dev/null
    i=$((i + 1))
done
sleep 2
check fifty_stops_scheduler_alive alive "$PA"
check fifty_stops_partner_alive alive "$PB"
n=0
while [ "$(psql_db ra -c "SELECT count(*) FROM t_schedule_job WHERE status <> 'FINISHED'")" != 0 ] && [ $n -lt 100 ]; do
    sleep 0.2
    n=$((n + 1))
done
expect fifty_stops_all_finished "$(psql_db ra -c "SELECT count(*) FROM t_schedule_job WHERE status <> 'FINISHED'")" 0
n=0
while [ "$(docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.node=$B" | wc -l)" != 0 ] && [ $n -lt 150 ]; do
    sleep 0.2
    n=$((n + 1))
done
expect fifty_stops_no_container_left "$(docker -H "$DOCKER_URL" ps -q --filter "label=org.bfia.node=$B" | wc -l)" 0

kill "$XPID" "$YPID" "$ZPID" 2>/dev/null
wait "$XPID" "$YPID" "$ZPID" 2>/dev/null
gw_stop ra
expect ra_exit_clean "$GW_RC" 0
check ra_sanitizer_clean sanitizer_clean ra
gw_stop rb
expect rb_exit_clean "$GW_RC" 0
check rb_sanitizer_clean sanitizer_clean rb

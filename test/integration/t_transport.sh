# t_transport.sh - the transport layer (spec bfia-transport.md) on real
# gateways, a real PostgreSQL and real task containers: the conformance tests
# of spec §11 in both dialects and both content types, bad input, the
# isolation between jobs and between concurrent tasks, two and three nodes
# exchanging data in both directions, a 100 MiB message, 10,000 messages in
# order, a slow consumer, a peer that is down and a gateway killed mid-transfer;
# the batched relay between our gateways (bad input, a batch mixing two jobs,
# a tampered signature, order across batches, the peer going down mid-batch).
#
# Nodes: A (its own transport listener, transport.port), B and C (the
# channel API on http.port).  Between them every request is signed (routes
# without auth: off), except C's route, which is auth: off so that this
# script can speak for C to B's invoke by hand.
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started (see $DOCKER_STATE)"
    exit 0
fi
pass engine_available
TOOL="$OUT/tools/chantool"

# node ids of their own: other scripts' gateways reconcile containers by node id
A=JG0100001100071010 B=JG0100001100071020 C=JG0100001100071030
PA=$(free_port) PB=$(free_port) PC=$(free_port) TA=$(free_port)
R="$T_ROOT/routes-t.yaml"
printf '%s:\n  host: 127.0.0.1\n  port: %s\n%s:\n  host: 127.0.0.1\n  port: %s\n%s:\n  host: 127.0.0.1\n  port: %s\n  auth: off\n' \
    $A "$PA" $B "$PB" $C "$PC" >"$R"
for n in xa xb xc; do new_db $n; done
MB=$((1024 * 1024))
node_start xa $A "$PA" "$R" GW_SCHED_POLL_MS=200 GW_TRANSPORT_PORT="$TA" \
    GW_TRANSPORT_SESSION_MSGS=20 GW_TRANSPORT_BODY_MAX=$((110 * MB)) \
    GW_TRANSPORT_SESSION_BYTES=$((120 * MB)) GW_TRANSPORT_TOTAL_BYTES=$((300 * MB))
# B's memory is measured: a small ASan quarantine, so freed blocks are not kept
XB_ENV="ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=16"
node_start xb $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_TRANSPORT_BODY_MAX=$((110 * MB)) \
    GW_TRANSPORT_SESSION_BYTES=$((120 * MB)) GW_TRANSPORT_TOTAL_BYTES=$((300 * MB)) "$XB_ENV"
node_start xc $C "$PC" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20 && gw_ready "$PB" 20 && gw_ready "$PC" 20
expect three_nodes_ready "$?" 0
UA="http://127.0.0.1:$TA" UB="http://127.0.0.1:$PB" UC="http://127.0.0.1:$PC"

for p in $PA $PB $PC; do expect "provider_registered_$p" "$(code_of "$(register_demo "$p")")" 0; done
expect dataset_guest "$(code_of "$(upload "$PA" demo guest deploy/demo/data/guest.csv)")" 0
expect dataset_host "$(code_of "$(upload "$PB" demo host deploy/demo/data/host.csv)")" 0
expect dataset_host1 "$(code_of "$(upload "$PC" demo host deploy/demo/data/host.csv)")" 0

submit() { api POST "$PA" /v1/platform/schedule/job/create_all "$1" | jq -r '.data.job_id // ""'; }
# the demo job between this script's nodes, edited by a jq filter
jj() { job_json "$1" ".config.initiator.node_id = \"$A\" | .config.role.guest = [\"$A\"] | .config.role.host = [\"$B\"] | $2"; }
JOINT='.dag.components += [{"name": "joint_stats_0", "componentName": "joint_stats", "provider": "bfia-demo", "version": "1.0.0", "input": [{"type": "report", "key": "col_stats_0.report"}], "output": [{"type": "report", "key": "joint"}]}]'
THREE='.config.role.host = ["'$B'", "'$C'"] | .config.task_params.host["1"] = {"hash_ids_0": {"dataset_id": "demo#host"}} | .config.job_params.host["1"] = {"resources": {"cpu": 1, "memory_mb": 128}}'
# HOLD: one task per party that sleeps, so its container and token stay live
HOLD='.dag.components = [.dag.components[0]] | .config.task_params.common.hash_ids_0.sleep_ms = 600000'

# token NODEDB JOB TASKNAME ROLE: config.token of that task's container
token() {
    _cn=$(psql_db "$1" -c "SELECT container_name FROM t_task WHERE job_id='$2' AND task_name='$3' AND role='$4' LIMIT 1")
    docker -H "$DOCKER_URL" inspect "$_cn" --format '{{json .Config.Env}}' 2>/dev/null |
        jq -r '.[] | select(startswith("config.token=")) | sub("config.token="; "")'
}
envof() { # NODEDB JOB TASKNAME ROLE KEY
    _cn=$(psql_db "$1" -c "SELECT container_name FROM t_task WHERE job_id='$2' AND task_name='$3' AND role='$4' LIMIT 1")
    docker -H "$DOCKER_URL" inspect "$_cn" --format '{{json .Config.Env}}' 2>/dev/null |
        jq -r --arg k "$5=" '.[] | select(startswith($k)) | sub($k; "")'
}
running() { # NODEDB JOB N: wait until N rows RUNNING
    _i=0
    while [ $_i -lt 300 ]; do
        [ "$(psql_db "$1" -c "SELECT count(*) FROM t_task WHERE job_id='$2' AND status='RUNNING'")" -ge "$3" ] && return 0
        sleep 0.2
        _i=$((_i + 1))
    done
    return 1
}
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }

# --- data crossing nodes: the demo job with joint_stats (2 parties) ------------------
J=$(submit "$(jj callback "$JOINT")")
expect joint_two_nodes_outcome "$(job_wait "$PA" "$J" 120)" success
ja=$(cat "$T_ROOT"/xa/data/storage/"$J"/joint_stats_0.joint.guest.0/data 2>/dev/null)
jb=$(cat "$T_ROOT"/xb/data/storage/"$J"/joint_stats_0.joint.host.0/data 2>/dev/null)
expect joint_guest_has_both "$(printf '%s' "$ja" | jq -c 'keys')" '["guest.0","host.0"]'
expect joint_host_has_both "$(printf '%s' "$jb" | jq -c 'keys')" '["guest.0","host.0"]'
expect joint_same_on_both "$(printf '%s' "$ja" | jq -S -c .)" "$(printf '%s' "$jb" | jq -S -c .)"
expect joint_host_stats_came_from_b "$(printf '%s' "$ja" | jq -c '."host.0"')" \
    "$(jq -c . "$T_ROOT/xb/data/storage/$J/col_stats_0.report.host.0/data")"
expect joint_sessions_released_at_job_end "$(metric "$PA" gateway_transport_sessions)" 0

# --- three nodes, every direction ------------------------------------------------------
J3=$(submit "$(jj callback "$JOINT | $THREE")")
expect joint_three_nodes_outcome "$(job_wait "$PA" "$J3" 150)" success
expect joint_three_keys "$(jq -c 'keys' "$T_ROOT/xc/data/storage/$J3/joint_stats_0.joint.host.1/data" 2>/dev/null)" '["guest.0","host.0","host.1"]'
P3=$(submit "$(jj callback '.dag.components = [{"name": "chan_probe_0", "componentName": "chan_probe", "provider": "bfia-demo", "version": "1.0.0", "input": [], "output": []}] | .config.task_params.common = {"chan_probe_0": {"count": 200, "size": 4096}} | '"$THREE"' | del(.config.task_params.guest) | del(.config.task_params.host)')")
expect probe_three_nodes_200_each_way "$(job_wait "$PA" "$P3" 150)" success

# --- hold two jobs (X: A+B+C, Y: A+B) for the conformance and isolation tests ----------
X=$(submit "$(jj poll "$HOLD | $THREE")")
Y=$(submit "$(jj poll "$HOLD")")
running xa "$X" 1 && running xb "$X" 1 && running xc "$X" 1 && running xa "$Y" 1 && running xb "$Y" 1
expect hold_jobs_running "$?" 0
XG=$(token xa "$X" hash_ids_0 guest) XH=$(token xb "$X" hash_ids_0 host) XC=$(token xc "$X" hash_ids_0 host)
YG=$(token xa "$Y" hash_ids_0 guest) YH=$(token xb "$Y" hash_ids_0 host)
SX="session_$X" SY="session_$Y"
expect env_session_id "$(envof xa "$X" hash_ids_0 guest config.session_id)" "$SX"
expect env_transport "$(envof xa "$X" hash_ids_0 guest system.transport)" "127.0.0.1:$TA"
expect env_transport_main_port "$(envof xb "$X" hash_ids_0 host system.transport)" "127.0.0.1:$PB"
expect env_trace "$(envof xa "$X" hash_ids_0 guest config.trace_id)" "trace_$(psql_db xa -c "SELECT task_id FROM t_task WHERE job_id='$X' LIMIT 1")"
expect env_node_ids "$(envof xa "$X" hash_ids_0 guest config.node_id.host.1)" $C
case "$XG" in bct1.*) pass token_is_capability ;; *) fail token_is_capability "config.token '$XG'" ;; esac
[ "$XG" != "$XH" ] && [ "$XG" != "$YG" ] && pass tokens_differ_per_task || fail tokens_differ_per_task same

D="$T_ROOT/chan"
mkdir -p "$D"
printf 'a\000b\001\377end' >"$D/small"
SMALL=$(wc -c <"$D/small")
head -c $((MB + 7)) /dev/urandom >"$D/mib"

# §11.1 push -> pop on one gateway (target = self), both dialects, \0 and 1 MiB+
for d in raw json proto; do
    expect "local_push_$d" "$($TOOL push "$UA" "$XG" "$SX" $A "loc-$d" "$D/mib" $d)" E0000000000
    r=$($TOOL pop "$UA" "$XG" "$SX" $A "loc-$d" "$D/got" $d 5)
    expect "local_pop_$d" "$r" "E0000000000 $((MB + 7))"
    check "local_bytes_exact_$d" cmp -s "$D/mib" "$D/got"
done
expect local_small_push "$($TOOL push "$UA" "$XG" "$SX" $A zero "$D/small" json)" E0000000000
$TOOL pop "$UA" "$XG" "$SX" $A zero "$D/got" proto 5 >/dev/null
check local_nul_bytes_exact cmp -s "$D/small" "$D/got"

# §11.2 across nodes: A's guest -> B's host, dialect B raw and A (json, proto)
for d in raw json proto; do
    expect "remote_push_$d" "$($TOOL push "$UA" "$XG" "$SX" $B "ab-$d" "$D/mib" $d)" E0000000000
    expect "remote_pop_$d" "$($TOOL pop "$UB" "$XH" "$SX" $A "ab-$d" "$D/got" $d 5)" "E0000000000 $((MB + 7))"
    check "remote_bytes_exact_$d" cmp -s "$D/mib" "$D/got"
done
# and back (B -> A), the pop naming no peer (any)
expect remote_push_back "$($TOOL push "$UB" "$XH" "$SX" $A "ba" "$D/small")" E0000000000
expect remote_pop_back_any_peer "$($TOOL pop "$UA" "$XG" "$SX" - "ba" "$D/got" raw 5)" "E0000000000 $SMALL"

# §11.2 the invoke forms, spoken for C (its route is auth: off) to B, for job X
TX=$(psql_db xb -c "SELECT task_id FROM t_task WHERE job_id='$X' LIMIT 1")
inv() { # FORM TOPIC FILE -> code
    case $1 in
    raw) curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SX" -H "x-ptp-topic: $2" \
        -H "x-ptp-target-node-id: $B" --data-binary @"$3" "$UB/v1/interconn/chan/invoke?task=$TX" >"$D/ans"
        $TOOL answer raw "$D/ans" ;;
    pass) $TOOL body push proto "$2" "$3" >"$D/body"
        curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SX" -H 'x-ptp-version: 1' \
            -H 'x-ptp-uri: https://ptp.cn/v1/interconn/chan/push' -H 'Content-Type: application/x-protobuf' \
            --data-binary @"$D/body" "$UB/v1/interconn/chan/transport?task=$TX" >"$D/ans"
        $TOOL answer proto "$D/ans" ;;
    encap) $TOOL body encap json "$2" "$3" >"$D/body"
        curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SX" \
            -H 'x-ptp-uri: https://ptp.cn/v1/interconn/chan/push' -H 'Content-Type: application/json' \
            --data-binary @"$D/body" "$UB/v1/interconn/chan/invoke?task=$TX" >"$D/ans"
        $TOOL answer json "$D/ans" ;;
    esac
}
for f in raw pass encap; do
    expect "invoke_${f}_accepted" "$(inv $f "c-$f" "$D/small")" E0000000000
    expect "invoke_${f}_popped" "$($TOOL pop "$UB" "$XH" "$SX" $C "c-$f" "$D/got" raw 5)" "E0000000000 $SMALL"
    check "invoke_${f}_bytes" cmp -s "$D/small" "$D/got"
done
$TOOL body push proto t "$D/small" >"$D/body"
curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SX" -H 'x-ptp-version: 1' \
    -H 'x-ptp-uri: /v1/interconn/chan/pop' -H 'Content-Type: application/x-protobuf' \
    --data-binary @"$D/body" "$UB/v1/interconn/chan/invoke" >"$D/ans"
expect invoke_pop_not_permitted "$($TOOL answer proto "$D/ans")" E0000000614
# A's route requires signatures: nobody may speak for A unsigned
r=$(curl -s -H "x-ptp-source-node-id: $A" -H "x-ptp-session-id: $SX" -H "x-ptp-topic: forged" \
    --data-binary @"$D/small" "$UB/v1/interconn/chan/invoke")
printf '%s' "$r" >"$D/ans"
case "$(cat "$D/ans")" in *'"code":5004'*) pass invoke_unsigned_for_signed_node_refused ;;
*) expect invoke_unsigned_for_signed_node_refused "$($TOOL answer raw "$D/ans")" E0000000403 ;; esac
expect invoke_forged_not_enqueued "$($TOOL peek "$UB" "$XH" "$SX" $A forged "$D/got")" "E0000000000 0"
# ?nowait (our gateways' flag: do not wait for room) takes 1 or 0, nothing else
r=$(curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SX" -H "x-ptp-topic: nw" \
    --data-binary @"$D/small" "$UB/v1/interconn/chan/invoke?task=$TX&nowait=maybe" >"$D/ans"; $TOOL answer raw "$D/ans")
expect invoke_bad_nowait_400 "$r" E0000000400
grep -q 'nowait' "$D/ans" && pass invoke_bad_nowait_names_it || fail invoke_bad_nowait_names_it "$(cat "$D/ans")"
expect invoke_bad_nowait_not_enqueued "$($TOOL peek "$UB" "$XH" "$SX" $C nw "$D/got")" "E0000000000 0"
expect invoke_nowait_1_accepted "$(curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SX" -H "x-ptp-topic: nw" \
    --data-binary @"$D/small" "$UB/v1/interconn/chan/invoke?task=$TX&nowait=1" >"$D/ans"; $TOOL answer raw "$D/ans")" E0000000000
expect invoke_nowait_1_popped "$($TOOL pop "$UB" "$XH" "$SX" $C nw "$D/got" raw 5)" "E0000000000 $SMALL"

# §11.3 a pop blocks until a push arrives; a pop times out empty at its timeout
($TOOL pop "$UB" "$XH" "$SX" $A late "$D/late" raw 20 >"$D/late.code") &
bp=$!
sleep 1
expect push_wakes_pop "$($TOOL push "$UA" "$XG" "$SX" $B late "$D/small")" E0000000000
wait $bp
expect blocked_pop_got_it "$(cat "$D/late.code")" "E0000000000 $SMALL"
t0=$(date +%s)
expect pop_timeout_empty "$($TOOL pop "$UB" "$XH" "$SX" $A nothing "$D/got" raw 1)" "E0000000000 0"
t1=$(date +%s)
[ $((t1 - t0)) -le 3 ] && pass pop_timeout_bounded || fail pop_timeout_bounded "$((t1 - t0)) s"

# §11.4 FIFO in one (session, topic); topics isolated
for i in 1 2 3 4 5; do printf 'm%s' $i >"$D/m$i"; $TOOL push "$UA" "$XG" "$SX" $B fifo "$D/m$i" >/dev/null; done
$TOOL push "$UA" "$XG" "$SX" $B other "$D/m5" >/dev/null
order=""
for i in 1 2 3 4 5; do $TOOL pop "$UB" "$XH" "$SX" $A fifo "$D/got" raw 5 >/dev/null; order="$order$(cat "$D/got")"; done
expect fifo_order "$order" m1m2m3m4m5
expect topic_isolated "$($TOOL pop "$UB" "$XH" "$SX" $A other "$D/got" raw 1)" "E0000000000 2"

# §11.5 peek: immediate when empty; removes the head (KUS and MESH do)
expect peek_empty "$($TOOL peek "$UB" "$XH" "$SX" $A pk "$D/got")" "E0000000000 0"
$TOOL push "$UA" "$XG" "$SX" $B pk "$D/m1" >/dev/null
expect peek_head "$($TOOL peek "$UB" "$XH" "$SX" $A pk "$D/got" json)" "E0000000000 2"
expect peek_removed "$($TOOL peek "$UB" "$XH" "$SX" $A pk "$D/got")" "E0000000000 0"

# §11.6 release: one topic, then the whole session; blocked pops wake; later traffic 608
$TOOL push "$UA" "$XG" "$SX" $A r1 "$D/m1" >/dev/null
$TOOL push "$UA" "$XG" "$SX" $A r2 "$D/m2" >/dev/null
expect release_topic "$($TOOL release "$UA" "$XG" "$SX" r1)" E0000000000
expect release_topic_only_that "$($TOOL pop "$UA" "$XG" "$SX" - r1 "$D/got" raw 1):$($TOOL pop "$UA" "$XG" "$SX" - r2 "$D/got" raw 1)" "E0000000000 0:E0000000000 2"
($TOOL pop "$UA" "$XG" "$SX" - wake "$D/got" raw 30 >"$D/wake.code") &
bp=$!
sleep 0.5
expect release_session "$($TOOL release "$UA" "$XG" "$SX" -)" E0000000000
wait $bp
expect release_wakes_pop "$(cut -d' ' -f1 "$D/wake.code")" E0000000608
expect released_push_608 "$($TOOL push "$UA" "$XG" "$SX" $A x "$D/m1")" E0000000608
expect released_pop_608 "$($TOOL pop "$UA" "$XG" "$SX" - x "$D/got" raw 1 | cut -d' ' -f1)" E0000000608

# §11.7 buffer full (A holds 20 messages per session): the push waits, then 700
for i in $(seq 1 20); do $TOOL push "$UA" "$YG" "$SY" $A full "$D/m1" >/dev/null; done
r=$(curl -s -H "x-ptp-token: $YG" -H "x-ptp-session-id: $SY" -H "x-ptp-target-node-id: $A" \
    -H "x-ptp-topic: full" --data-binary @"$D/m1" "$UA/v1/interconn/chan/push?timeout=1" >"$D/ans"; $TOOL answer raw "$D/ans")
expect full_push_700 "$r" E0000000700
($TOOL pop "$UA" "$YG" "$SY" - full "$D/got" raw 5 >/dev/null; sleep 0.3; $TOOL pop "$UA" "$YG" "$SY" - full "$D/got" raw 5 >/dev/null) &
expect full_push_waits_for_room "$($TOOL push "$UA" "$YG" "$SY" $A full "$D/m2")" E0000000000
wait $!
expect full_drain_count "$(metric "$PA" gateway_transport_messages)" 19

# bad input: the code, nothing enqueued, the process up
before=$(metric "$PA" gateway_transport_messages)
bad() { # NAME WANT curl-args...
    _n=$1 _w=$2
    shift 2
    curl -s "$@" >"$D/ans"
    _d=raw
    case " $* " in *"application/json"*) _d=json ;; *"x-protobuf"*) _d=proto ;; esac
    _got=$($TOOL answer $_d "$D/ans")
    [ "$_got" = bad-answer ] && _got=$($TOOL answer json "$D/ans") # refused before the dialect was known
    expect "$_n" "$_got" "$_w"
}
bad bad_missing_session E0000000400 -H "x-ptp-token: $XG" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic: t" --data-binary x "$UA/v1/interconn/chan/push"
bad bad_missing_topic E0000000400 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic;" --data-binary x "$UA/v1/interconn/chan/push"
bad bad_missing_target E0000000400 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-topic: t" --data-binary x "$UA/v1/interconn/chan/push"
bad bad_target_not_party E0000000403 -H "x-ptp-token: $YG" -H "x-ptp-session-id: $SY" -H "x-ptp-target-node-id: $C" -H "x-ptp-topic: t" --data-binary x "$UA/v1/interconn/chan/push"
bad bad_target_unknown E0000000618 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: JG0999" -H "x-ptp-topic: t" --data-binary x "$UA/v1/interconn/chan/push"
printf '\377\377\377' >"$D/garbage"
bad bad_garbage_protobuf E0000000616 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H 'Content-Type: application/x-protobuf' --data-binary @"$D/garbage" "$UA/v1/interconn/chan/push"
bad bad_json_body E0000000400 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H 'Content-Type: application/json' --data-binary '{"topic":"t","payload":"not base64!"}' "$UA/v1/interconn/chan/push"
bad bad_no_content_type E0000000400 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" --data-binary x "$UA/v1/interconn/chan/push"
bad bad_wrong_token E0000000403 -H "x-ptp-token: bct1.AAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic: t" --data-binary x "$UA/v1/interconn/chan/push"
bad bad_fate_style_token E0000000403 -H "x-ptp-token: $SX" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic: t" --data-binary x "$UA/v1/interconn/chan/push"
bad bad_no_token E0000000403 -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic: t" --data-binary x "$UA/v1/interconn/chan/push"
head -c $((110 * MB + 1)) /dev/zero >"$D/big"
bad bad_oversized_413 E0000000413 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic: t" --data-binary @"$D/big" "$UA/v1/interconn/chan/push"
bad bad_bad_timeout E0000000400 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic: t" "$UA/v1/interconn/chan/pop?timeout=soon" --data-binary ''
rm -f "$D/big"
expect bad_input_nothing_enqueued "$(metric "$PA" gateway_transport_messages)" "$before"
expect bad_input_process_up "$(http_status "http://127.0.0.1:$PA/healthz")" 200
expect container_api_not_on_main_port_of_a "$(api POST "$PA" /v1/interconn/chan/pop '{}' | jq -r .code)" 5006

# isolation: job X's container can neither read nor inject job Y's messages
$TOOL push "$UA" "$YG" "$SY" $B secret "$D/m3" >/dev/null
bad iso_pop_other_job E0000000403 -H "x-ptp-token: $XH" -H "x-ptp-session-id: $SY" -H "x-ptp-target-node-id: $A" -H "x-ptp-topic: secret" --data-binary '' "$UB/v1/interconn/chan/pop?timeout=1"
bad iso_push_other_job E0000000403 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SY" -H "x-ptp-target-node-id: $B" -H "x-ptp-topic: secret" --data-binary x "$UA/v1/interconn/chan/push"
bad iso_release_other_job E0000000403 -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SY" -H "x-ptp-topic: secret" --data-binary '' "$UA/v1/interconn/chan/release"
expect iso_owner_still_reads "$($TOOL pop "$UB" "$YH" "$SY" $A secret "$D/got" raw 5)" "E0000000000 2"
# C is not a party of Y: speaking for C into Y's session is refused at B
r=$(curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SY" -H "x-ptp-topic: secret" --data-binary x "$UB/v1/interconn/chan/invoke" >"$D/ans"; $TOOL answer raw "$D/ans")
expect iso_invoke_non_party_refused "$r" E0000000403

# --- the batched relay between our gateways (container/chanbatch.h) --------------------
# Spoken for C (its route is auth: off) to B's /transport by hand: bad input
# gets the spec's code, nothing is enqueued, B stays up.
BT="$UB/v1/interconn/chan/transport"
bpost() { # BODYFILE: the answer into $D/bans
    curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-target-node-id: $B" \
        -H 'Content-Type: application/x-bfia-chan-batch' --data-binary @"$1" "$BT" >"$D/bans"
}
before=$(metric "$PB" gateway_transport_messages)
printf 'BCB1\000\000\000\001garbage' >"$D/bbad"
bpost "$D/bbad"
expect batch_malformed_400 "$($TOOL batchanswer "$D/bans" 1)" E0000000400
printf 'BCB1\000\000\000\000' >"$D/bbad"
bpost "$D/bbad"
expect batch_empty_400 "$($TOOL batchanswer "$D/bans" 1)" E0000000400
printf '{"topic":"t","payload":"eA=="}' >"$D/bbad"
bpost "$D/bbad"
expect batch_not_a_batch_400 "$($TOOL batchanswer "$D/bans" 1)" E0000000400
$TOOL batch "$D/bgood" "$SX" "$TX" bt "$D/m1"
head -c 20 "$D/bgood" >"$D/bbad" # cut inside the first record
bpost "$D/bbad"
expect batch_truncated_400 "$($TOOL batchanswer "$D/bans" 1)" E0000000400
head -c $((110 * MB + 1)) /dev/zero >"$D/big"
bpost "$D/big"
expect batch_oversized_413 "$($TOOL batchanswer "$D/bans" 1)" E0000000413
rm -f "$D/big"
expect batch_bad_nothing_enqueued "$(metric "$PB" gateway_transport_messages)" "$before"
expect batch_bad_process_up "$(http_status "http://127.0.0.1:$PB/healthz")" 200
# one batch, two jobs: C is a party of X, not of Y; X's message is
# delivered, Y's refused, each answered on its own
$TOOL batch "$D/bmix" "$SX" "$TX" bmix "$D/m1" "$SY" - bmix "$D/m2" "session_nojob" - bmix "$D/m3"
bpost "$D/bmix"
expect batch_mixed_per_message "$($TOOL batchanswer "$D/bans" 3)" "E0000000000 E0000000000 E0000000403 E0000000403"
expect batch_mixed_delivered "$($TOOL pop "$UB" "$XH" "$SX" $C bmix "$D/got" raw 5)" "E0000000000 2"
check batch_mixed_bytes cmp -s "$D/m1" "$D/got"
expect batch_mixed_other_job_nothing "$($TOOL peek "$UB" "$YH" "$SY" - bmix "$D/got")" "E0000000000 0"
# signed as A (A's route requires signatures): the signature covers the
# whole batch; the same headers on another body are refused
KA="$T_ROOT/xa/data/keys/node-es256.pem"
sigpost() { # BODYFILE HEADERSFILE [ANSWER-HEADERS-FILE]: the answer in $D/bans
    _bf=$1 _hf=$2
    set -- -s -H 'Content-Type: application/x-bfia-chan-batch' -H "x-ptp-source-node-id: $A" \
        --data-binary @"$_bf" "$BT" ${3:+-D "$3"}
    while IFS= read -r _h; do set -- "$@" -H "$_h"; done <"$_hf"
    curl "$@" >"$D/bans"
}
$TOOL batch "$D/bsig" "$SX" "$TX" bsig "$D/m1" "$SX" "$TX" bsig "$D/m2"
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST /v1/interconn/chan/transport "$D/bsig" >"$D/hsig"
sigpost "$D/bsig" "$D/hsig"
expect batch_signed_accepted "$($TOOL batchanswer "$D/bans" 2)" "E0000000000 E0000000000 E0000000000"
$TOOL batch "$D/btam" "$SX" "$TX" bsig "$D/m1" "$SX" "$TX" bsig "$D/m3"
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST /v1/interconn/chan/transport "$D/bsig" >"$D/hsig"
sigpost "$D/btam" "$D/hsig"
expect batch_tampered_refused "$(jq -r .code "$D/bans" 2>/dev/null)" 5004
order=""
for i in 1 2 3; do $TOOL pop "$UB" "$XH" "$SX" $A bsig "$D/got" raw 1 >/dev/null; order="$order$(cat "$D/got")"; done
expect batch_signed_in_order_tampered_absent "$order" m1m2
# concurrent pushers through A's relay: batches form, each topic keeps its order
b0=$(metric "$PA" 'gateway_transport_relay_requests_total{form="batch"}')
pids=""
for i in 1 2 3 4; do
    $TOOL popmany "$UB" "$XH" "$SX" $A "ord$i" 2500 100 >"$D/ordc$i" &
    pids="$pids $!"
    $TOOL pushmany "$UA" "$XG" "$SX" $B "ord$i" 2500 100 >"$D/ordp$i" &
    pids="$pids $!"
done
wait $pids
for i in 1 2 3 4; do
    expect "batch_order_pushed_$i" "$(cat "$D/ordp$i")" "ok 2500"
    expect "batch_order_in_order_$i" "$(cat "$D/ordc$i")" "ok 2500"
done
b1=$(metric "$PA" 'gateway_transport_relay_requests_total{form="batch"}')
[ $((b1 - b0)) -gt 0 ] && [ $((b1 - b0)) -lt 10000 ] && pass batch_requests_fewer_than_messages ||
    fail batch_requests_fewer_than_messages "$((b1 - b0)) batch requests for 10000 messages"

# two tasks of one job at once between the same nodes (Z: two roots)
Z=$(submit "$(jj poll "$HOLD"' | .dag.components += [.dag.components[0] | .name = "hash_ids_1"] | .config.task_params.common.hash_ids_1 = .config.task_params.common.hash_ids_0 | .config.task_params.guest["0"].hash_ids_1 = .config.task_params.guest["0"].hash_ids_0 | .config.task_params.host["0"].hash_ids_1 = .config.task_params.host["0"].hash_ids_0')")
running xa "$Z" 2 && running xb "$Z" 2
expect two_tasks_running "$?" 0
Z0G=$(token xa "$Z" hash_ids_0 guest) Z1H=$(token xb "$Z" hash_ids_1 host) Z0H=$(token xb "$Z" hash_ids_0 host)
expect same_job_push "$($TOOL push "$UA" "$Z0G" "session_$Z" $B "host.0-guest.0" "$D/m4")" E0000000000
expect same_job_other_task_sees_nothing "$($TOOL pop "$UB" "$Z1H" "session_$Z" $A "host.0-guest.0" "$D/got" raw 1)" "E0000000000 0"
expect same_job_own_task_reads "$($TOOL pop "$UB" "$Z0H" "session_$Z" $A "host.0-guest.0" "$D/got" raw 5)" "E0000000000 2"

# a 100 MiB message across nodes
gb0=$(metric "$PB" 'gateway_signed_bodies_total{check="gmac"}')
head -c $((100 * MB)) /dev/urandom >"$D/hundred"
expect mib100_push "$($TOOL push "$UA" "$XG" "$SX" $B big "$D/hundred")" E0000000000
expect mib100_pop "$($TOOL pop "$UB" "$XH" "$SX" $A big "$D/got" raw 30)" "E0000000000 $((100 * MB))"
check mib100_bytes_exact cmp -s "$D/hundred" "$D/got"
rm -f "$D/hundred" "$D/got"

# Large bodies between our gateways go under a body MAC (gateway/reqsig.h)
# once the receiver has named its body key: the 100 MiB message above did.
expect mib100_under_body_mac "$(metric "$PB" 'gateway_signed_bodies_total{check="gmac"}')" $((gb0 + 1))
# B names its key in the answer to a signed request
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST /v1/interconn/chan/transport "$D/bsig" >"$D/hsig"
sigpost "$D/bsig" "$D/hsig" "$D/bhdr"
BKEY=$(tr -d '\r' <"$D/bhdr" | awk -F': ' 'tolower($1) == "x-bfia-body-mac-key" {print $2}' | sed -n 's/^GMAC-X25519;key=//p')
expect body_key_named "${#BKEY}" 43
for i in 1 2; do $TOOL pop "$UB" "$XH" "$SX" $A bsig "$D/got" raw 1 >/dev/null; done
head -c $((200 * 1024)) /dev/urandom >"$D/m200"
cp "$D/m200" "$D/m200x"
printf 'X' | dd of="$D/m200x" bs=1 seek=100000 conv=notrunc 2>/dev/null
$TOOL batch "$D/bmac" "$SX" "$TX" bmac "$D/m200"
$TOOL batch "$D/bmacx" "$SX" "$TX" bmac "$D/m200x"
g0=$(metric "$PB" 'gateway_signed_bodies_total{check="gmac"}')
r0=$(metric "$PB" 'gateway_signed_bodies_total{check="gmac_refused"}')
# signed by hand under B's key: accepted, the bytes arrive
"$CTL_BIN" request sign --key "$KA" --from $A --to $B --body-mac-key "$BKEY" POST /v1/interconn/chan/transport "$D/bmac" >"$D/hmac"
expect body_mac_header_printed "$(grep -c '^x-bfia-body-mac: GMAC-X25519;from=' "$D/hmac")" 1
sigpost "$D/bmac" "$D/hmac"
expect body_mac_accepted "$($TOOL batchanswer "$D/bans" 1)" "E0000000000 E0000000000"
expect body_mac_popped "$($TOOL pop "$UB" "$XH" "$SX" $A bmac "$D/got" raw 5)" "E0000000000 $((200 * 1024))"
check body_mac_bytes_exact cmp -s "$D/m200" "$D/got"
expect body_mac_counted "$(metric "$PB" 'gateway_signed_bodies_total{check="gmac"}')" $((g0 + 1))
# the same request again: a replay
sigpost "$D/bmac" "$D/hmac"
jq -r .msg "$D/bans" 2>/dev/null | grep -q 'replayed nonce' && pass body_mac_replay_refused ||
    fail body_mac_replay_refused "$(cat "$D/bans")"
# its header dropped (the signature covers the MAC line, not a hash)
"$CTL_BIN" request sign --key "$KA" --from $A --to $B --body-mac-key "$BKEY" POST /v1/interconn/chan/transport "$D/bmac" >"$D/hmac"
grep -v '^x-bfia-body-mac:' "$D/hmac" >"$D/hmac2"
sigpost "$D/bmac" "$D/hmac2"
expect body_mac_header_dropped_refused "$(jq -r .code "$D/bans" 2>/dev/null)" 5004
# a valid-looking header added to a request signed over the hash
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST /v1/interconn/chan/transport "$D/bmac" >"$D/hmac2"
grep '^x-bfia-body-mac:' "$D/hmac" >>"$D/hmac2"
sigpost "$D/bmac" "$D/hmac2"
expect body_mac_header_added_refused "$(jq -r .code "$D/bans" 2>/dev/null)" 5004
expect body_mac_forms_not_enqueued "$($TOOL peek "$UB" "$XH" "$SX" $A bmac "$D/got")" "E0000000000 0"
# a caller that knows no body key (a gateway of ours from before it) still
# signs large bodies with SHA-256: accepted
s0=$(metric "$PB" 'gateway_signed_bodies_total{check="sha256"}')
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST /v1/interconn/chan/transport "$D/bmac" >"$D/hmac"
sigpost "$D/bmac" "$D/hmac"
expect body_sha_still_accepted "$($TOOL batchanswer "$D/bans" 1)" "E0000000000 E0000000000"
expect body_sha_counted "$(metric "$PB" 'gateway_signed_bodies_total{check="sha256"}')" $((s0 + 1))
expect body_sha_popped "$($TOOL pop "$UB" "$XH" "$SX" $A bmac "$D/got" raw 5)" "E0000000000 $((200 * 1024))"
# headers signed for one body on a body one byte different: refused, nothing enqueued
"$CTL_BIN" request sign --key "$KA" --from $A --to $B --body-mac-key "$BKEY" POST /v1/interconn/chan/transport "$D/bmac" >"$D/hmac"
sigpost "$D/bmacx" "$D/hmac"
expect body_mac_tampered_refused "$(jq -r .code "$D/bans" 2>/dev/null)" 5004
jq -r .msg "$D/bans" 2>/dev/null | grep -q 'does not match x-bfia-body-mac' && pass body_mac_tampered_says_why ||
    fail body_mac_tampered_says_why "$(cat "$D/bans")"
expect body_mac_tampered_not_enqueued "$($TOOL peek "$UB" "$XH" "$SX" $A bmac "$D/got")" "E0000000000 0"
# keyed for a key that is not B's (a node key changed): refused, naming B's current key
"$CTL_BIN" request sign --key "$KA" --from $A --to $B --body-mac-key q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA POST /v1/interconn/chan/transport "$D/bmac" >"$D/hmac"
sigpost "$D/bmac" "$D/hmac" "$D/bhdr"
expect body_mac_other_key_refused "$(jq -r .code "$D/bans" 2>/dev/null)" 5004
jq -r .msg "$D/bans" 2>/dev/null | grep -q 'not this node.s body key' && pass body_mac_other_key_says_why ||
    fail body_mac_other_key_says_why "$(cat "$D/bans")"
grep -qi "^x-bfia-body-mac-key: GMAC-X25519;key=$BKEY" "$D/bhdr" && pass body_mac_refusal_names_key ||
    fail body_mac_refusal_names_key "$(cat "$D/bhdr")"
# a malformed header value
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST /v1/interconn/chan/transport "$D/bmac" >"$D/hmac"
echo "x-bfia-body-mac: GMAC-X25519;from=short;to=short;tag=x" >>"$D/hmac"
sigpost "$D/bmac" "$D/hmac"
expect body_mac_malformed_refused "$(jq -r .code "$D/bans" 2>/dev/null)" 5004
jq -r .msg "$D/bans" 2>/dev/null | grep -q 'x-bfia-body-mac must be' && pass body_mac_malformed_says_why ||
    fail body_mac_malformed_says_why "$(cat "$D/bans")"
expect body_mac_refusals_counted "$(metric "$PB" 'gateway_signed_bodies_total{check="gmac_refused"}')" $((r0 + 2))
"$CTL_BIN" request sign --key "$KA" --from $A --to $B --nonce abcdefgh12 --body-mac-key "$BKEY" POST /v1/interconn/chan/transport "$D/bmac" >/dev/null 2>"$D/err"
expect body_mac_fixed_nonce_refused_by_ctl "$?" 2
grep -q 'fresh nonce' "$D/err" && pass body_mac_fixed_nonce_says_why || fail body_mac_fixed_nonce_says_why "$(cat "$D/err")"
expect body_mac_nothing_enqueued "$($TOOL peek "$UB" "$XH" "$SX" $A bmac "$D/got")" "E0000000000 0"
gw_ready "$PB" 5
expect body_mac_node_up "$?" 0

# 10,000 small messages in order, consumer running alongside
($TOOL popmany "$UB" "$XH" "$SX" $A many 10000 100 >"$D/many.out") &
bp=$!
expect ten_thousand_pushed "$($TOOL pushmany "$UA" "$XG" "$SX" $B many 10000 100)" "ok 10000"
wait $bp
expect ten_thousand_in_order "$(cat "$D/many.out")" "ok 10000"

# a slow consumer: B holds at most 120 MiB for the session; pushes beyond it
# wait and fail with 700; B's memory stays within the bound plus 32 MiB
rss() { awk '/VmRSS/ {print $2}' "/proc/$(gw_pid xb)/status"; }
r0=$(rss)
head -c $((4 * MB)) /dev/urandom >"$D/four"
full=0
for i in $(seq 1 45); do
    r=$(curl -s -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" \
        -H "x-ptp-topic: slow" --data-binary @"$D/four" "$UA/v1/interconn/chan/push?timeout=1" >"$D/ans"; $TOOL answer raw "$D/ans")
    [ "$r" = E0000000700 ] && full=$((full + 1))
done
r1=$(rss)
held=$(metric "$PB" 'gateway_transport_bytes{state="queued"}')
[ "$full" -ge 10 ] && pass slow_consumer_pushes_refused || fail slow_consumer_pushes_refused "$full refusals"
[ "$held" -le $((120 * MB)) ] && pass slow_consumer_bytes_bounded || fail slow_consumer_bytes_bounded "$held"
[ $(( (r1 - r0) * 1024 )) -le $((120 * MB + 32 * MB)) ] && pass slow_consumer_rss_bounded || fail slow_consumer_rss_bounded "rss grew $(( (r1 - r0) / 1024 )) MiB"
n=0
while [ "$($TOOL pop "$UB" "$XH" "$SX" $A slow "$D/got" raw 1)" = "E0000000000 $((4 * MB))" ]; do n=$((n + 1)); done
expect slow_consumer_gets_what_was_accepted "$n" "$(( 45 - full ))"

# one job's full queue at B holds up no other job's messages from A to B (one
# relay lane): X's queue at B is filled, pushes into it wait at A (parked),
# while Y's small and 1 MiB messages cross at once; room at B lets X's waiting
# pushes in, in their order
holpush() { # FILE TIMEOUT [TOPIC] -> code (a push of job X into its queue "hol")
    _f=$(mktemp "$D/hans.XXXXXX")
    curl -s -H "x-ptp-token: $XG" -H "x-ptp-session-id: $SX" -H "x-ptp-target-node-id: $B" \
        -H "x-ptp-topic: ${3:-hol}" --data-binary @"$1" "$UA/v1/interconn/chan/push?timeout=$2" >"$_f"
    $TOOL answer raw "$_f"
    rm -f "$_f"
}
i=0
while [ $i -lt 40 ] && [ "$(holpush "$D/four" 1)" = E0000000000 ]; do i=$((i + 1)); done
[ $i -ge 20 ] && [ $i -lt 40 ] && pass hol_queue_filled || fail hol_queue_filled "$i pushes of 4 MiB taken"
printf 'hol-1' >"$D/h1"
printf 'hol-2' >"$D/h2"
(holpush "$D/h1" 30 >"$D/h1.code") &
hp1=$!
sleep 0.3
(holpush "$D/h2" 30 >"$D/h2.code") &
hp2=$!
# and 40 more waiting in one other queue of X (more than a lane passes over
# by queue: each queue counts once)
hpm=""
for i in $(seq 40); do
    (holpush "$D/h1" 30 hol-many >"$D/hm$i.code") &
    hpm="$hpm $!"
done
sleep 1
t0=$(date +%s.%N)
ys=$($TOOL push "$UA" "$YG" "$SY" $B holy "$D/small")
yb=$($TOOL push "$UA" "$YG" "$SY" $B holy "$D/mib")
t1=$(date +%s.%N)
expect hol_other_job_small_crosses "$ys" E0000000000
expect hol_other_job_mib_crosses "$yb" E0000000000
took=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
[ "$(awk -v t="$took" 'BEGIN {print (t <= 3)}')" = 1 ] && pass hol_other_job_not_held_up ||
    fail hol_other_job_not_held_up "Y's two pushes took $took s behind X's full queue"
expect hol_other_job_popped "$($TOOL pop "$UB" "$YH" "$SY" $A holy "$D/got" raw 5):$($TOOL pop "$UB" "$YH" "$SY" $A holy "$D/got" raw 5)" \
    "E0000000000 $SMALL:E0000000000 $((MB + 7))"
kill -0 $hp1 2>/dev/null && kill -0 $hp2 2>/dev/null && pass hol_full_pushes_still_waiting ||
    fail hol_full_pushes_still_waiting "$(cat "$D/h1.code" "$D/h2.code" 2>/dev/null | tr '\n' ' ')"
[ "$(metric "$PA" 'gateway_transport_relays_total{outcome="parked"}')" -gt 0 ] && pass hol_parked_counted ||
    fail hol_parked_counted "$(metric "$PA" 'gateway_transport_relays_total{outcome="parked"}')"
expect hol_room_made "$($TOOL pop "$UB" "$XH" "$SX" $A hol "$D/got" raw 5)" "E0000000000 $((4 * MB))"
wait $hp1 $hp2 $hpm
expect hol_waiting_pushes_got_in "$(cat "$D/h1.code"):$(cat "$D/h2.code")" E0000000000:E0000000000
expect hol_many_waiting_got_in "$(cat "$D"/hm*.code | grep -c '^E0000000000$')" 40
m=0
while [ "$($TOOL pop "$UB" "$XH" "$SX" $A hol-many "$D/got" raw 1)" = "E0000000000 5" ]; do m=$((m + 1)); done
expect hol_many_all_delivered "$m" 40
order=""
while r=$($TOOL pop "$UB" "$XH" "$SX" $A hol "$D/got" raw 1) && [ "$r" != "E0000000000 0" ]; do
    case "$r" in "E0000000000 5") order="$order$(cat "$D/got")," ;; "E0000000000 $((4 * MB))") ;; *) order="$order?$r," ; break ;; esac
done
expect hol_waiting_pushes_in_order "$order" "hol-1,hol-2,"

# job end: every session of X released on each node; late traffic 608
api POST "$PA" /v1/platform/schedule/job/stop_all "{\"job_id\":\"$X\"}" >/dev/null
job_wait "$PA" "$X" 60 >/dev/null
sleep 1
r=$(curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: $SX" -H "x-ptp-topic: late" --data-binary x "$UB/v1/interconn/chan/invoke?task=$TX" >"$D/ans"; $TOOL answer raw "$D/ans")
expect finished_job_invoke_608 "$r" E0000000608
expect finished_job_token_dead "$($TOOL push "$UA" "$XG" "$SX" $A x "$D/m1")" E0000000403

# --- a peer that is down: the push answers 607, the task fails with the reason ----------
api POST "$PA" /v1/platform/schedule/job/stop_all "{\"job_id\":\"$Y\"}" >/dev/null
PD=$(submit "$(jj poll '.dag.components = [{"name": "chan_probe_0", "componentName": "chan_probe", "provider": "bfia-demo", "version": "1.0.0", "input": [], "output": []}] | .config.task_params.common = {"chan_probe_0": {"count": 1, "size": 64}} | .config.task_params.guest = {"0": {"chan_probe_0": {"sleep_ms": 4000}}} | del(.config.task_params.host)')")
running xa "$PD" 1 && running xb "$PD" 1
# B goes down while pushes for it are being batched (job Z's session): every
# push still running answers 607 within the bounded retries
pids=""
for i in 1 2 3 4; do
    $TOOL pushmany "$UA" "$Z0G" "session_$Z" $B "down$i" 100000 64 >"$D/down$i" &
    pids="$pids $!"
done
sleep 1
gw_stop xb
t0=$(date +%s)
wait $pids
t1=$(date +%s)
for i in 1 2 3 4; do
    case "$(cat "$D/down$i")" in "E0000000607 at "*) pass "batch_peer_down_607_$i" ;;
    *) fail "batch_peer_down_607_$i" "$(cat "$D/down$i")" ;; esac
done
[ $((t1 - t0)) -le 20 ] && pass batch_peer_down_bounded || fail batch_peer_down_bounded "$((t1 - t0)) s"
t0=$(date +%s)
out=$(job_wait "$PA" "$PD" 60)
t1=$(date +%s)
expect peer_down_job_failed "$out" failed
why=$(psql_db xa -c "SELECT log_tail FROM t_task WHERE job_id='$PD'")
case "$why" in *E0000000607*) pass peer_down_reason_visible ;; *) fail peer_down_reason_visible "log tail: $why" ;; esac
[ $((t1 - t0)) -le 40 ] && pass peer_down_bounded || fail peer_down_bounded "$((t1 - t0)) s"
mv "$T_ROOT/xb/data/keys/node-es256.pem" "$T_ROOT/xb-old-key.pem"
node_start xb $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_TRANSPORT_BODY_MAX=$((110 * MB)) \
    GW_TRANSPORT_SESSION_BYTES=$((120 * MB)) GW_TRANSPORT_TOTAL_BYTES=$((300 * MB))
gw_ready "$PB" 30
expect b_back "$?" 0
# B came back with a new node key, so a new body key; A forgot the old one
# when B, draining, answered without it: SHA-256 first, then A knows the new
# one.  B dies (-9, no answer at all) and comes back with yet another key:
# A still holds the second, B refuses it naming the third, A sends the
# message again under that.
head -c $MB /dev/urandom >"$D/one"
expect new_key_first_push "$($TOOL push "$UA" "$Z0G" "session_$Z" $B newkey "$D/one")" E0000000000
expect new_key_first_under_sha "$(metric "$PB" 'gateway_signed_bodies_total{check="sha256"}')" 1
kill -9 "$(gw_pid xb)"
wait "$(gw_pid xb)" 2>/dev/null
mv "$T_ROOT/xb/data/keys/node-es256.pem" "$T_ROOT/xb-old-key2.pem"
node_start xb $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_TRANSPORT_BODY_MAX=$((110 * MB)) \
    GW_TRANSPORT_SESSION_BYTES=$((120 * MB)) GW_TRANSPORT_TOTAL_BYTES=$((300 * MB))
gw_ready "$PB" 30
expect b_back_new_key "$?" 0
expect new_key_push_sent_again "$($TOOL push "$UA" "$Z0G" "session_$Z" $B newkey "$D/one")" E0000000000
expect new_key_old_refused_once "$(metric "$PB" 'gateway_signed_bodies_total{check="gmac_refused"}')" 1
expect new_key_then_taken "$(metric "$PB" 'gateway_signed_bodies_total{check="gmac"}')" 1
grep -q 'transport.body_mac' "$T_ROOT/xa.log" && pass new_key_resend_logged || fail new_key_resend_logged "no transport.body_mac line in A's log"
api POST "$PA" /v1/platform/schedule/job/stop_all "{\"job_id\":\"$Z\"}" >/dev/null

# --- a gateway killed (-9) mid-transfer: both sides fail in bounded time ----------------
PK=$(submit "$(jj poll '.dag.components = [{"name": "chan_probe_0", "componentName": "chan_probe", "provider": "bfia-demo", "version": "1.0.0", "input": [], "output": []}] | .config.task_params.common = {"chan_probe_0": {"count": 100000, "size": 1024}} | del(.config.task_params.guest) | del(.config.task_params.host)')")
running xa "$PK" 1 && running xb "$PK" 1
sleep 2
kill -9 "$(gw_pid xb)"
wait "$(gw_pid xb)" 2>/dev/null
node_start xb $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_TRANSPORT_BODY_MAX=$((110 * MB)) \
    GW_TRANSPORT_SESSION_BYTES=$((120 * MB)) GW_TRANSPORT_TOTAL_BYTES=$((300 * MB))
gw_ready "$PB" 30
t0=$(date +%s)
expect killed_mid_transfer_job_failed "$(job_wait "$PA" "$PK" 120)" failed
t1=$(date +%s)
i=0
while [ "$(psql_db xb -c "SELECT status FROM t_task WHERE job_id='$PK'")" = RUNNING ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
expect killed_b_side_failed "$(psql_db xb -c "SELECT status FROM t_task WHERE job_id='$PK'")" FAILED
expect killed_a_side_failed "$(psql_db xa -c "SELECT status FROM t_task WHERE job_id='$PK'")" FAILED
[ $((t1 - t0)) -le 120 ] && pass killed_bounded || fail killed_bounded "$((t1 - t0)) s"
i=0 # the job's end reaches B by job/stop from the scheduler
while [ "$(psql_db xb -c "SELECT status FROM t_job WHERE job_id='$PK'")" != FINISHED ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
# (B learns of the job's end from the database's notification, a moment
# after the row changed: asked again for up to 5 s)
i=0
while :; do
    r=$(curl -s -H "x-ptp-source-node-id: $C" -H "x-ptp-session-id: session_$PK" -H "x-ptp-topic: late" --data-binary x "$UB/v1/interconn/chan/invoke" >"$D/ans"; $TOOL answer raw "$D/ans")
    [ "$r" = E0000000608 ] || [ $i -ge 25 ] && break
    sleep 0.2
    i=$((i + 1))
done
expect killed_nothing_delivered_later "$r" E0000000608

# --- metrics and shutdown ---------------------------------------------------------------------
m=$(curl -s "http://127.0.0.1:$PA/metrics")
case "$m" in *'gateway_transport_answers_total{op="push",code="E0000000403"}'*) pass metrics_refusals_by_code ;; *) fail metrics_refusals_by_code missing ;; esac
case "$m" in *'gateway_transport_waiters{op="pop"}'*) pass metrics_waiters ;; *) fail metrics_waiters missing ;; esac
for n in xa xb xc; do
    gw_stop $n
    expect "${n}_exit_0" "$GW_RC" 0
    check "${n}_sanitizer_clean" sanitizer_clean $n
done

# t_psi.sh - the ECDH-PSI component (deploy/providers/psi) end to end: real
# task containers on two gateway nodes (signed routes, the transport layer,
# dialect B), and both parties on one node.  Cases: the spec's §10 test
# vectors (the three suites); 100,000 x 80,000 IDs with a known overlap (25
# and 20 batches of 4096, beyond the link's window of 10) checked against
# the intersection computed here with awk/sort/comm, then a second PSI task reading the
# first's output while a late duplicate of the first task's traffic
# arrives; an empty set; duplicate IDs; non-ASCII IDs; result_to_rank 0
# and 1; an unsupported suite refused at start; a peer whose container
# dies mid-run; the outputs registered as datasets.
. test/integration/lib.sh
T_START=$(date +%s)

if ! docker_up; then
    fail engine_available "no Docker engine could be started (see $DOCKER_STATE)"
    exit 0
fi
pass engine_available
DK() { docker -H "$DOCKER_URL" "$@"; }
TOOL="$OUT/tools/chantool"

# The image under a tag named after its sources: never re-tagged, so no
# other run's pinned image turns dangling because of this one.
SRC=$(cat deploy/providers/psi/*.c deploy/providers/psi/*.h deploy/providers/psi/proto/*.proto \
    deploy/providers/psi/provider.json | sha256sum | cut -c1-16)
IMG="bfia-ecdh-psi:t-$SRC"
if ! DK image inspect "$IMG" >/dev/null 2>&1; then
    sh deploy/providers/psi/build.sh "$DOCKER_URL" "$IMG" >"$T_ROOT/psi-image.log" 2>&1
fi
# tags of other sources, made over an hour ago (a concurrent run may use a newer one)
old=$(($(date +%s) - 3600))
DK images --format '{{.Repository}}:{{.Tag}} {{.CreatedAt}}' bfia-ecdh-psi | while read -r t d rest; do
    case "$t" in bfia-ecdh-psi:t-*) ;; *) continue ;; esac
    [ "$t" = "$IMG" ] && continue
    c=$(date -d "$d $(echo "$rest" | cut -d' ' -f1-2)" +%s 2>/dev/null) || continue
    [ "$c" -lt "$old" ] && DK rmi "$t" >/dev/null 2>&1
done
check psi_image_built DK image inspect "$IMG"

# node ids of their own: a gateway's reconcile removes containers of its id
A=JG0100001100000510 B=JG0100001100000520
PA=$(free_port) PB=$(free_port)
R="$T_ROOT/routes-psi.yaml" # signed both ways (auth: required, the default)
printf '%s:\n  host: 127.0.0.1\n  port: %s\n%s:\n  host: 127.0.0.1\n  port: %s\n' $A "$PA" $B "$PB" >"$R"
for n in pa pb; do new_db $n; done
node_start pa $A "$PA" "$R" GW_SCHED_POLL_MS=200
node_start pb $B "$PB" "$R" GW_SCHED_POLL_MS=200
gw_ready "$PA" 20 && gw_ready "$PB" 20
expect two_nodes_ready "$?" 0
PROV=$(jq -c --arg i "$IMG" '.metadata.image = $i' deploy/providers/psi/provider.json)
for n in A B; do
    eval "p=\$P$n"
    expect "provider_registered_$n" "$(code_of "$(api POST "$p" /v2/provider/register "$PROV")")" 0
done

D="$T_ROOT/psi"
mkdir -p "$D"
submit() { api POST "$PA" /v1/platform/schedule/job/create_all "$1" | jq -r '.data.job_id // ""'; }
# psi_job GUEST_DS HOST_DS [jq filter]: one ecdh_psi task, A guest, B host
psi_job() {
    jq -nc --arg a $A --arg b $B --arg g "$1" --arg h "$2" '{
      flow_id: "psi",
      dag: {version: "2.0", components: [
        {name: "psi_0", componentName: "ecdh_psi", provider: "bfia-psi", version: "1.0.0",
         input: [], output: [{type: "dataset", key: "train_data"}, {type: "report", key: "report"}]}]},
      config: {version: "2.0.0", initiator: {role: "guest", node_id: $a},
        role: {guest: [$a], host: [$b]},
        job_params: {common: {sync_type: "callback"},
          guest: {"0": {resources: {cpu: 1, memory_mb: 256}}},
          host: {"0": {resources: {cpu: 1, memory_mb: 256}}}},
        task_params: {common: {psi_0: {recv_timeout_s: 30}},
          guest: {"0": {psi_0: {dataset_id: $g}}}, host: {"0": {psi_0: {dataset_id: $h}}}}}}' |
        jq -c "${3:-.}"
}
out_of() { echo "$T_ROOT/$1/data/storage/$2/$3.$5.$4.0/data"; } # NODE JOB TASK ROLE KEY
up() { expect "upload_$2_$3" "$(code_of "$(upload "$1" psi "$3" "$D/$3.csv")")" 0; } # PORT LABEL NAME
task_row() { psql_db "$1" -c "SELECT $4 FROM t_task WHERE job_id='$2' AND role='$3'"; } # DB JOB ROLE COLS
# wait_status DB JOB ROLE STATUS SECONDS
wait_status() {
    _i=0
    while [ "$(task_row "$1" "$2" "$3" "status" | head -n 1)" != "$4" ] && [ $_i -lt $(($5 * 5)) ]; do
        sleep 0.2
        _i=$((_i + 1))
    done
    [ "$(task_row "$1" "$2" "$3" "status" | head -n 1)" = "$4" ]
}

# --- data -------------------------------------------------------------------------------
printf 'id,x\n1,a\n2,b\n3,c\n4,d\n' >"$D/va.csv"
printf 'id,y\n3,p\n4,q\n5,r\n' >"$D/vb.csv"
printf 'id,x\n' >"$D/empty.csv"
printf 'id,x\n7,a\n1,b\n7,c\n2,d\n9,e\n' >"$D/dupa.csv"
printf 'id,y\n9,p\n7,q\n3,r\n7,s\n7,t\n' >"$D/dupb.csv"
printf 'id,x\n\346\227\245\346\234\254,1\n\303\274ber,2\nplain,3\n\360\237\230\200,4\n  caf\303\251  ,5\n' >"$D/nona.csv"
printf 'id,y\n\360\237\230\200,p\nu\314\210ber,q\ncaf\303\251,r\n\346\227\245\346\234\254,s\n' >"$D/nonb.csv"
# 100,000 x 80,000: ids n of [0, 100000) and [60000, 140000) in scrambled order
awk 'BEGIN { print "id,v"; for (k = 0; k < 100000; k++) { n = (k * 7919) % 100000; printf "id%07d,g%d\n", n, k } }' >"$D/biga.csv"
awk 'BEGIN { print "id,w,z"; for (k = 0; k < 80000; k++) { n = 60000 + (k * 7907) % 80000; printf "id%07d,h%d,%d\n", n, k, k % 7 } }' >"$D/bigb.csv"
# what the outputs must be: the header and the rows whose id the other side has, in file order
expected() { awk -F, 'NR == FNR { if (FNR > 1) have[$1] = 1; next } FNR == 1 || ($1 in have)' "$2" "$1"; }
expected "$D/biga.csv" "$D/bigb.csv" >"$D/big_exp_a"
expected "$D/bigb.csv" "$D/biga.csv" >"$D/big_exp_b"
tail -n +2 "$D/biga.csv" | cut -d, -f1 | sort >"$D/ida"
tail -n +2 "$D/bigb.csv" | cut -d, -f1 | sort >"$D/idb"
expect big_overlap_by_comm "$(comm -12 "$D/ida" "$D/idb" | wc -l)" 40000
expect big_expected_rows_agree "$(($(wc -l <"$D/big_exp_a") - 1)):$(($(wc -l <"$D/big_exp_b") - 1))" 40000:40000
for f in va empty dupa nona biga; do up "$PA" a $f; done
for f in vb dupb nonb bigb; do up "$PB" b $f; done
# both parties on A: the host's dataset there too
for f in vb; do up "$PA" a $f; done

# --- a batch of small jobs at once ----------------------------------------------------------
JV=$(submit "$(psi_job psi#va psi#vb)")
JE=$(submit "$(psi_job psi#empty psi#vb)")
JD=$(submit "$(psi_job psi#dupa psi#dupb)")
JN=$(submit "$(psi_job psi#nona psi#nonb)")
J0=$(submit "$(psi_job psi#va psi#vb '.config.task_params.common.psi_0.result_to_rank = 0')")
J1=$(submit "$(psi_job psi#va psi#vb '.config.task_params.common.psi_0.result_to_rank = 1')")
# an unsupported suite in one party's parameters (deterministic: the other
# party waits for its peer until the scheduler stops it)
JU=$(submit "$(psi_job psi#va psi#vb '.config.task_params.guest["0"].psi_0.hash_type = "sm3"')")
JH=$(submit "$(psi_job psi#va psi#vb '.config.task_params.host["0"].psi_0.hash2curve_strategy = "try_and_rehash"')")
JS=$(submit "$(psi_job psi#va psi#vb '.config.task_params.common.psi_0.curve_type = "sm2"')")
JT=$(submit "$(psi_job psi#va psi#vb '.config.task_params.common.psi_0 += {curve_type: "sm2", hash_type: "sm3"}')")
JO=$(submit "$(psi_job psi#va psi#vb ".config.role.host = [\"$A\"]")")
for j in JV JE JD JN J0 J1 JU JH JS JT JO; do
    eval "v=\$$j"
    [ -n "$v" ] && pass "submitted_$j" || fail "submitted_$j" "no job id"
done

# the §10 sets: header plus the matching rows in file order, on both sides
expect vectors_outcome "$(job_wait "$PA" "$JV" 180)" success
expect vectors_guest_output "$(cat "$(out_of pa "$JV" psi_0 guest train_data)")" "$(printf 'id,x\n3,c\n4,d')"
expect vectors_host_output "$(cat "$(out_of pb "$JV" psi_0 host train_data)")" "$(printf 'id,y\n3,p\n4,q')"
expect vectors_guest_report "$(jq -c . "$(out_of pa "$JV" psi_0 guest report)")" '{"original_count":4,"intersection_count":2}'
expect vectors_host_report "$(jq -c . "$(out_of pb "$JV" psi_0 host report)")" '{"original_count":3,"intersection_count":2}'
expect vectors_sm2_outcome "$(job_wait "$PA" "$JS" 120)" success
expect vectors_sm2_outputs "$(cat "$(out_of pa "$JS" psi_0 guest train_data)")|$(cat "$(out_of pb "$JS" psi_0 host train_data)")" \
    "$(printf 'id,x\n3,c\n4,d|id,y\n3,p\n4,q')"
expect vectors_sm2_sm3_outcome "$(job_wait "$PA" "$JT" 120)" success
expect vectors_sm2_sm3_outputs "$(cat "$(out_of pa "$JT" psi_0 guest train_data)")|$(cat "$(out_of pb "$JT" psi_0 host train_data)")" \
    "$(printf 'id,x\n3,c\n4,d|id,y\n3,p\n4,q')"
# the transport carried it: messages relayed both ways between the nodes
expect vectors_relayed_a "$(curl -s "http://127.0.0.1:$PA/metrics" | awk '$1 == "gateway_transport_relays_total{outcome=\"ok\"}" {print ($2 > 0)}')" 1
expect vectors_relayed_b "$(curl -s "http://127.0.0.1:$PB/metrics" | awk '$1 == "gateway_transport_relays_total{outcome=\"ok\"}" {print ($2 > 0)}')" 1

expect empty_outcome "$(job_wait "$PA" "$JE" 120)" success
expect empty_guest_output_header_only "$(cat "$(out_of pa "$JE" psi_0 guest train_data)")" "id,x"
expect empty_host_output_header_only "$(cat "$(out_of pb "$JE" psi_0 host train_data)")" "id,y"
expect empty_reports "$(jq -c . "$(out_of pa "$JE" psi_0 guest report)")|$(jq -c . "$(out_of pb "$JE" psi_0 host report)")" \
    '{"original_count":0,"intersection_count":0}|{"original_count":3,"intersection_count":0}'

expect duplicates_outcome "$(job_wait "$PA" "$JD" 120)" success
expect duplicates_guest_all_rows "$(cat "$(out_of pa "$JD" psi_0 guest train_data)")" "$(printf 'id,x\n7,a\n7,c\n9,e')"
expect duplicates_host_all_rows "$(cat "$(out_of pb "$JD" psi_0 host train_data)")" "$(printf 'id,y\n9,p\n7,q\n7,s\n7,t')"
expect duplicates_reports "$(jq -c . "$(out_of pa "$JD" psi_0 guest report)")|$(jq -c . "$(out_of pb "$JD" psi_0 host report)")" \
    '{"original_count":5,"intersection_count":3}|{"original_count":5,"intersection_count":4}'

# byte-exact: NFC "über" does not match NFD "über"; whitespace around an id is stripped
expect nonascii_outcome "$(job_wait "$PA" "$JN" 120)" success
expect nonascii_guest "$(cat "$(out_of pa "$JN" psi_0 guest train_data)")" \
    "$(printf 'id,x\n\346\227\245\346\234\254,1\n\360\237\230\200,4\n  caf\303\251  ,5')"
expect nonascii_host "$(cat "$(out_of pb "$JN" psi_0 host train_data)")" \
    "$(printf 'id,y\n\360\237\230\200,p\ncaf\303\251,r\n\346\227\245\346\234\254,s')"

# result_to_rank: rank 0 is guest.0, rank 1 host.0; the other party writes no output
expect rank0_outcome "$(job_wait "$PA" "$J0" 120)" success
expect rank0_guest_output "$(cat "$(out_of pa "$J0" psi_0 guest train_data)")" "$(printf 'id,x\n3,c\n4,d')"
check rank0_host_no_output test ! -e "$(out_of pb "$J0" psi_0 host train_data)"
expect rank0_host_report "$(jq -c . "$(out_of pb "$J0" psi_0 host report)")" '{"original_count":3,"intersection_count":-1}'
expect rank1_outcome "$(job_wait "$PA" "$J1" 120)" success
check rank1_guest_no_output test ! -e "$(out_of pa "$J1" psi_0 guest train_data)"
expect rank1_host_output "$(cat "$(out_of pb "$J1" psi_0 host train_data)")" "$(printf 'id,y\n3,p\n4,q')"

# an unsupported suite: FAILED at start, by the component's own callback,
# exit code 2, the parameter named; the job fails and the other party stops
unsupported() { # LABEL JOB DB ROLE OTHER_DB OTHER_ROLE TEXT
    expect "unsupported_$1_outcome" "$(job_wait "$PA" "$2" 120)" failed
    wait_status $3 "$2" $4 FAILED 30
    expect "unsupported_$1_failed_exit_2" "$(task_row $3 "$2" $4 "status || ' ' || coalesce(exit_code::text, '-')")" "FAILED 2"
    expect "unsupported_$1_by_callback" "$(psql_db $3 -c "SELECT count(*) FROM t_event WHERE entity = 'task' AND entity_id LIKE '$2/%' AND to_status = 'FAILED' AND channel = 'callback'")" 1
    case "$(task_row $3 "$2" $4 log_tail)" in
    *"$7"*) pass "unsupported_$1_names_parameter" ;;
    *) fail "unsupported_$1_names_parameter" "log tail: $(task_row $3 "$2" $4 log_tail)" ;;
    esac
    wait_status $5 "$2" $6 FAILED 30
    expect "unsupported_$1_other_party_stopped" "$(task_row $5 "$2" $6 status)" FAILED
    check "unsupported_$1_no_output" test ! -e "$(out_of $5 "$2" psi_0 $6 train_data)"
}
unsupported guest "$JU" pa guest pb host "hash_type: 'sm3' is not supported with curve_type curve25519"
unsupported host "$JH" pb host pa guest "hash2curve_strategy: 'try_and_rehash' is not supported with curve_type curve25519"

# both parties on one node: their messages never leave A
expect one_node_outcome "$(job_wait "$PA" "$JO" 120)" success
expect one_node_guest "$(cat "$(out_of pa "$JO" psi_0 guest train_data)")" "$(printf 'id,x\n3,c\n4,d')"
expect one_node_host "$(cat "$(out_of pa "$JO" psi_0 host train_data)")" "$(printf 'id,y\n3,p\n4,q')"

# --- 100,000 x 80,000, then a second PSI on the first's output --------------------------------
TWO='.dag.components += [{name: "psi_1", componentName: "ecdh_psi", provider: "bfia-psi", version: "1.0.0",
  input: [{type: "dataset", key: "psi_0.train_data"}],
  output: [{type: "dataset", key: "train_data"}, {type: "report", key: "report"}]}]
  | .config.task_params.common.psi_1 = {recv_timeout_s: 30}
  | .config.job_params.guest["0"].resources.cpu = -1 | .config.job_params.host["0"].resources.cpu = -1'
t0=$(date +%s)
JB=$(submit "$(psi_job psi#biga psi#bigb "$TWO")")
# the first task's messages that arrive late (a relay retried after the
# task ended) must never reach the second task: inject such a message, signed
# as A, while psi_1 runs on B; taken by psi_1 it would break its link
i=0
while [ "$(psql_db pb -c "SELECT count(*) FROM t_task WHERE job_id='$JB' AND task_name='psi_1'")" = 0 ] && [ $i -lt 900 ]; do
    sleep 0.2
    i=$((i + 1))
done
T0=$(psql_db pb -c "SELECT task_id FROM t_task WHERE job_id='$JB' AND task_name='psi_0'")
printf 'not a PushRequest' >"$D/junk"
inject() { # TASK_SCOPE -> answer code
    _q="/v1/interconn/chan/invoke?session=session_$JB&topic=guest.0-host.0&task=$1&timeout=5"
    "$CTL_BIN" request sign --key "$T_ROOT/pa/data/keys/node-es256.pem" --from $A --to $B POST "$_q" "$D/junk" >"$D/sig"
    curl -s $(sed 's/^\([^:]*\): \(.*\)$/-H \1:\2/' "$D/sig") -H "x-ptp-session-id: session_$JB" \
        -H "x-ptp-topic: guest.0-host.0" -H "x-ptp-source-node-id: $A" -H "x-ptp-target-node-id: $B" \
        --data-binary @"$D/junk" "http://127.0.0.1:$PB$_q" >"$D/ans"
    "$TOOL" answer raw "$D/ans"
}
expect late_first_task_message_refused "$(inject "$T0")" E0000000608
expect late_unscoped_message_queued_apart "$(inject "")" E0000000000
expect big_two_tasks_outcome "$(job_wait "$PA" "$JB" 300)" success
t1=$(date +%s)
check big_guest_output_is_intersection cmp -s "$D/big_exp_a" "$(out_of pa "$JB" psi_0 guest train_data)"
check big_host_output_is_intersection cmp -s "$D/big_exp_b" "$(out_of pb "$JB" psi_0 host train_data)"
expect big_reports "$(jq -c . "$(out_of pa "$JB" psi_0 guest report)")|$(jq -c . "$(out_of pb "$JB" psi_0 host report)")" \
    '{"original_count":100000,"intersection_count":40000}|{"original_count":80000,"intersection_count":40000}'
check second_task_guest_reads_first_output cmp -s "$D/big_exp_a" "$(out_of pa "$JB" psi_1 guest train_data)"
check second_task_host_reads_first_output cmp -s "$D/big_exp_b" "$(out_of pb "$JB" psi_1 host train_data)"
expect second_task_reports "$(jq -c . "$(out_of pa "$JB" psi_1 guest report)")" '{"original_count":40000,"intersection_count":40000}'
echo "# 100,000 x 80,000 then 40,000 x 40,000 through two gateways: $((t1 - t0)) s"

# --- outputs registered as datasets on their node -----------------------------------------------
dsq() { api GET "$1" "/v2/component/dataset/query?namespace=$2&name=$3"; }
NAME_A=psi_0.train_data.guest.0
r=$(dsq "$PA" "$JV" $NAME_A)
expect dataset_registered "$(code_of "$r"):$(printf '%s' "$r" | jq -r .data.dataset_id)" "0:$JV#$NAME_A"
expect dataset_size "$(printf '%s' "$r" | jq -r .data.size)" "$(wc -c <"$(out_of pa "$JV" psi_0 guest train_data)")"
expect dataset_uri "$(printf '%s' "$r" | jq -r .data.uri)" "file://$(cd "$T_ROOT/pa/data/storage" && pwd)/$JV/$NAME_A/data"
expect dataset_meta "$(printf '%s' "$r" | jq -c '.data.meta | [.task_name, .role, .role_index, .output, (.task_id | length > 0)]')" \
    '["psi_0","guest",0,"train_data",true]'
i=0
while [ "$(dsq "$PB" "$JB" psi_0.train_data.host.0 | jq -r .data.sha256)" = null ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
expect dataset_sha256_of_big_output "$(dsq "$PB" "$JB" psi_0.train_data.host.0 | jq -r .data.sha256)" \
    "$(sha256sum "$(out_of pb "$JB" psi_0 host train_data)" | cut -d' ' -f1)"
expect dataset_report_not_registered "$(code_of "$(dsq "$PA" "$JV" psi_0.report.guest.0)")" 5002
expect dataset_absent_output_not_registered "$(code_of "$(dsq "$PB" "$J0" psi_0.train_data.host.0)")" 5002
expect dataset_failed_task_not_registered "$(psql_db pa -c "SELECT count(*) FROM t_dataset WHERE namespace = '$JU'")" 0
expect dataset_listed_by_job "$(api GET "$PA" "/v2/component/dataset/list?namespace=$JB" | jq -r '[.data.datasets[].name] | join(" ")')" \
    "psi_0.train_data.guest.0 psi_1.train_data.guest.0"
# a later job reads it by dataset_id
JR=$(submit "$(psi_job "$JB#psi_1.train_data.guest.0" "$JB#psi_1.train_data.host.0")")
expect dataset_read_by_next_job "$(job_wait "$PA" "$JR" 180)" success
check dataset_read_by_next_job_output cmp -s "$D/big_exp_a" "$(out_of pa "$JR" psi_0 guest train_data)"

# --- a peer whose container dies mid-run -----------------------------------------------------------
SLOW='.config.job_params.guest["0"].resources.cpu = 0.2 | .config.job_params.host["0"].resources.cpu = 0.2'
JK=$(submit "$(psi_job psi#biga psi#bigb "$SLOW")")
wait_status pa "$JK" guest RUNNING 60 && wait_status pb "$JK" host RUNNING 60
expect kill_both_running "$?" 0
sleep 3
DK kill "$(task_row pb "$JK" host container_name)" >/dev/null 2>&1
t0=$(date +%s)
expect kill_job_failed "$(job_wait "$PA" "$JK" 120)" failed
wait_status pa "$JK" guest FAILED 60
wait_status pb "$JK" host FAILED 60
t1=$(date +%s)
expect kill_guest_failed "$(task_row pa "$JK" guest status)" FAILED
expect kill_host_failed "$(task_row pb "$JK" host status)" FAILED
[ $((t1 - t0)) -le 60 ] && pass kill_bounded || fail kill_bounded "$((t1 - t0)) s"
expect kill_job_finished_on_b "$(i=0; while [ "$(psql_db pb -c "SELECT status FROM t_job WHERE job_id='$JK'")" != FINISHED ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done; psql_db pb -c "SELECT status FROM t_job WHERE job_id='$JK'")" FINISHED
check kill_no_output_left test ! -e "$(out_of pa "$JK" psi_0 guest train_data)"
expect kill_no_container_left "$(DK ps -q --filter "label=org.bfia.job=$JK" | wc -l)" 0

for n in pa pb; do
    gw_stop $n
    expect "${n}_exit_0" "$GW_RC" 0
    check "${n}_sanitizer_clean" sanitizer_clean $n
done
echo "# t_psi took $(($(date +%s) - T_START)) s"

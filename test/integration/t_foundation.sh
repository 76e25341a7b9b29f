# t_foundation.sh - the gateway process against a real PostgreSQL:
# migrations, readiness across a database restart, bad input, many
# connections, wait-queue overflow, client disconnects, SIGTERM drain.
. test/integration/lib.sh

DB=t_foundation
new_db "$DB"
P=$(free_port)

# --- migrations -------------------------------------------------------------
env GW_NODE_ID=JG0100001100000010 GW_DB_DSN="$(dsn_for $DB)" GW_DATA_DIR="$T_ROOT/mig" \
    "$GW_BIN" -c conf/test.yaml --migrate-only >"$T_ROOT/mig1.out" 2>"$T_ROOT/mig1.err"
expect migrate_first_run_exit "$?" 0
n1=$(psql_db $DB -c "SELECT count(*) FROM schema_migrations")
files=$(ls migrations/[0-9][0-9][0-9][0-9]_*.sql | wc -l)
expect migrations_all_recorded "$n1" "$files"
tables=$(psql_db $DB -c "SELECT count(*) FROM information_schema.tables WHERE table_name IN
 ('t_schedule_job','t_schedule_task','t_job','t_task','t_provider','t_component','t_dataset',
  't_route','t_event','t_attest_key')")
expect migration_0001_creates_data_model "$tables" 10
# the status aggregation of spec 3.3, as every poll and status_all computes it
agg=$(psql_db $DB -c "SELECT concat_ws(',', bfia_task_agg(ARRAY['SUCCESS','SUCCESS']), bfia_task_agg(ARRAY['SUCCESS','RUNNING']),
  bfia_task_agg(ARRAY['READY','SUCCESS']), bfia_task_agg(ARRAY['PENDING','PENDING']), bfia_task_agg(ARRAY['RUNNING','FAILED','SUCCESS']),
  bfia_task_agg(ARRAY['PENDING','SUCCESS']), bfia_task_agg(ARRAY['READY','RUNNING']), bfia_task_agg(ARRAY['SUCCESS']),
  coalesce(bfia_task_agg(ARRAY[]::text[]), 'null'), coalesce(bfia_task_agg(NULL), 'null'))")
expect task_status_aggregation_rules "$agg" "SUCCESS,RUNNING,READY,PENDING,FAILED,PENDING,RUNNING,SUCCESS,null,null"
env GW_NODE_ID=JG0100001100000010 GW_DB_DSN="$(dsn_for $DB)" GW_DATA_DIR="$T_ROOT/mig" \
    "$GW_BIN" -c conf/test.yaml --migrate-only >/dev/null 2>"$T_ROOT/mig2.err"
expect migrate_second_run_exit "$?" 0
n2=$(psql_db $DB -c "SELECT count(*) FROM schema_migrations")
expect migrations_idempotent "$n2" "$n1"

# a schema newer than the binary knows is refused
new_db "${DB}_newer"
psql_db "${DB}_newer" -c "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', now())"
env GW_NODE_ID=JG0100001100000010 GW_DB_DSN="$(dsn_for ${DB}_newer)" GW_DATA_DIR="$T_ROOT/mig" \
    "$GW_BIN" -c conf/test.yaml >"$T_ROOT/newer.out" 2>"$T_ROOT/newer.err"
rc=$?
expect newer_schema_refused_exit "$rc" 1
check newer_schema_message_says_why grep -q "newer than this gateway knows" "$T_ROOT/newer.err"

# one database per node: the first node to start on it owns it
expect site_claimed "$(psql_db $DB -c "SELECT node_id FROM t_site")" JG0100001100000010
env GW_NODE_ID=JG0100001100000020 GW_DB_DSN="$(dsn_for $DB)" GW_DATA_DIR="$T_ROOT/mig" \
    "$GW_BIN" -c conf/test.yaml >"$T_ROOT/site.out" 2>"$T_ROOT/site.err"
expect other_node_refused_exit "$?" 1
check other_node_message_names_both grep -q "belongs to node JG0100001100000010, and this gateway is node JG0100001100000020" "$T_ROOT/site.err"
expect other_node_changed_nothing "$(psql_db $DB -c "SELECT node_id FROM t_site")" JG0100001100000010

# a broken config names the place
printf 'node_id: JG0100001100000010\nhttp:\n  prot: 80\n' >"$T_ROOT/bad.yaml"
"$GW_BIN" -c "$T_ROOT/bad.yaml" --check-config >"$T_ROOT/bad.out" 2>"$T_ROOT/bad.err"
expect check_config_rejects_unknown_key "$?" 2
check check_config_names_file_line grep -q "bad.yaml:3" "$T_ROOT/bad.err"
GW_NODE_ID=JG0100001100000010 "$GW_BIN" -c conf/test.yaml --check-config >/dev/null 2>&1
expect check_config_accepts_good "$?" 0

# --- start -------------------------------------------------------------------
GW_NODE_ID_OVERRIDE=JG0100001100000010 gw_start gw "$P" "$DB" GW_HTTP_BODY_MAX=1048576 GW_UPLOAD_MAX=1048576 GW_SHUTDOWN_TIMEOUT_S=10
if gw_ready "$P" 15; then pass gateway_ready; else fail gateway_ready "no 200 from /readyz"; cat "$T_ROOT/gw.log"; exit 1; fi

r=$(api GET "$P" /healthz)
expect healthz_code "$(code_of "$r")" 0
r=$(api GET "$P" /readyz)
expect readyz_ready "$(printf '%s' "$r" | jq -r .data.status)" ready

# --- envelope and bad input -------------------------------------------------
r=$(api GET "$P" /no/such/endpoint)
expect unknown_route_code "$(code_of "$r")" 5006
expect unknown_route_http200 "$(http_status "http://127.0.0.1:$P/no/such/endpoint")" 200
expect unknown_route_has_data "$(printf '%s' "$r" | jq -c .data)" '{}'
r=$(api DELETE "$P" /healthz)
expect wrong_method_code "$(code_of "$r")" 5007
r=$(api POST "$P" /v1/platform/route/get '{"node_id":')
expect malformed_json_code "$(code_of "$r")" 5001
check malformed_json_msg sh -c "printf '%s' '$r' | jq -r .msg | grep -q 'malformed JSON'"
r=$(api POST "$P" /v1/platform/route/get '[1,2]')
expect non_object_body_code "$(code_of "$r")" 5001
r=$(api POST "$P" /v1/platform/route/get '{"node_id":123}')
expect wrong_type_code "$(code_of "$r")" 5001
check wrong_type_names_field sh -c "printf '%s' '$r' | jq -r .msg | grep -q node_id"
r=$(api POST "$P" /v1/platform/route/get '{}')
expect missing_field_code "$(code_of "$r")" 5001
printf '%s' "$r" >"$T_ROOT/missing.json"
check missing_field_names_field grep -q "field 'node_id' is required" "$T_ROOT/missing.json"
r=$(api POST "$P" /v1/platform/route/get '{"node_id":"JG9999999999999999"}')
expect unknown_node_code "$(code_of "$r")" 5002
r=$(api GET "$P" '/v1/platform/route/get?node_id=JG9999999999999999')
expect query_string_params_code "$(code_of "$r")" 5002
# GET with a JSON body, as FATE-Flow sends it
r=$(curl -s -X GET -H 'Content-Type: application/json' --data '{"node_id":"JG9999999999999999"}' "http://127.0.0.1:$P/v1/platform/route/get")
expect get_with_json_body_code "$(code_of "$r")" 5002
hostile=$(printf '{"node_id":"a\\"b\\n\\u0000c<script>%%s%%n/../../etc"}')
r=$(api POST "$P" /v1/platform/route/get "$hostile")
c=$(code_of "$r")
if [ "$c" = 5001 ] || [ "$c" = 5002 ]; then pass hostile_string_refused; else fail hostile_string_refused "code $c"; fi
head -c 70000 /dev/zero | tr '\0' 'a' >"$T_ROOT/big.txt"
r=$(curl -s -X POST -H 'Content-Type: application/json' --data-binary @"$T_ROOT/big.txt" "http://127.0.0.1:$P/v1/platform/route/get")
expect route_body_cap_code "$(code_of "$r")" 5005
head -c 2000000 /dev/zero | tr '\0' 'a' >"$T_ROOT/huge.txt"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$T_ROOT/huge.txt" "http://127.0.0.1:$P/v1/platform/route/get")
expect global_body_cap_413 "$st" 413
r=$(api POST "$P" '/v1/platform/route/get?node_id=%zz' '')
expect bad_query_escape_code "$(code_of "$r")" 5001
# a raw malformed HTTP request line does not hurt the process
timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P; printf 'GARBAGE\\r\\n\\r\\n' >&3; cat <&3" >/dev/null 2>&1 || true
expect alive_after_bad_input "$(code_of "$(api GET "$P" /healthz)")" 0
rows=$(psql_db $DB -c "SELECT count(*) FROM t_route")
expect bad_input_changed_nothing "$rows" 0

# --- metrics ------------------------------------------------------------------
m=$(curl -s "http://127.0.0.1:$P/metrics")
check metrics_requests_by_route sh -c "printf '%s' '$m' | grep -q 'gateway_http_requests_total{route=\"/healthz\",code=\"2xx\"}'"
check metrics_histogram sh -c "printf '%s' '$m' | grep -q 'gateway_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"}'"
check metrics_db_pool sh -c "printf '%s' '$m' | grep -q 'gateway_db_pool_connections{state=\"idle\"}'"
check metrics_build_info sh -c "printf '%s' '$m' | grep -q '^gateway_build_info{'"
check metrics_inflight sh -c "printf '%s' '$m' | grep -q '^gateway_http_inflight 0'"

# --- 1,000 concurrent connections ---------------------------------------------
out=$("$OUT/tools/loadconn" "$P" 1000 /healthz)
expect thousand_connections "$out" "connections=1000 ok=1000 failed=0"
out=$("$OUT/tools/loadconn" "$P" 1000 '/v1/platform/route/list')
expect thousand_connections_db "$out" "connections=1000 ok=1000 failed=0"

# --- wait queue overflow: a second node with pool 2 and queue 4, table locked --
P2=$(free_port)
GW_NODE_ID_OVERRIDE=JG0100001100000010 gw_start gwq "$P2" "$DB" GW_DB_POOL_SIZE=2 GW_DB_QUEUE_MAX=4
gw_ready "$P2" 15 || fail gwq_ready "second gateway not ready"
( psql_db $DB -c "BEGIN; LOCK TABLE t_route IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;" >/dev/null ) &
lockpid=$!
sleep 0.5
qpids=""
for i in 1 2 3 4 5 6 7 8 9 10; do
    curl -s -m 10 "http://127.0.0.1:$P2/v1/platform/route/list" >"$T_ROOT/q$i.out" &
    qpids="$qpids $!"
done
sleep 0.5
busy=$(cat "$T_ROOT"/q*.out 2>/dev/null | jq -r .code 2>/dev/null | grep -c '^6004$')
expect wait_queue_full_refuses_fast "$busy" 4
st=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/v1/platform/route/list")
expect wait_queue_full_http_503 "$st" 503
wait $lockpid
for p in $qpids; do wait "$p"; done
ok=$(cat "$T_ROOT"/q*.out | jq -r .code | grep -c '^0$')
expect queued_requests_complete "$ok" 6
gw_stop gwq
expect gwq_sigterm_exit_0 "$GW_RC" 0
check gwq_sanitizer_clean sanitizer_clean gwq

# --- the platform API answers only the addresses in http.platform_allow -------
GW_NODE_ID=JG0100001100000010 GW_HTTP_PLATFORM_ALLOW=300.0.0.1/8 "$GW_BIN" -c conf/test.yaml --check-config >/dev/null 2>"$T_ROOT/pa.err"
expect platform_allow_bad_value_rejected "$?" 2
check platform_allow_bad_value_named grep -q "http.platform_allow: '300.0.0.1/8'" "$T_ROOT/pa.err"
P3=$(free_port)
GW_NODE_ID_OVERRIDE=JG0100001100000010 gw_start gwp "$P3" "$DB" GW_HTTP_PLATFORM_ALLOW=10.0.0.0/8
gw_ready "$P3" 15 || fail gwp_ready "third gateway not ready"
nroutes=$(psql_db $DB -c "SELECT count(*) FROM t_route")
r=$(api POST "$P3" /v1/platform/route/set '{"node_id":"JG0100001100000099","host":"127.0.0.1","port":9}')
expect platform_from_outside_allow_refused "$(code_of "$r")" 5004
case "$(printf '%s' "$r" | jq -r .msg)" in *"127.0.0.1 is not in http.platform_allow"*) pass platform_refusal_names_key ;; *) fail platform_refusal_names_key "$r" ;; esac
expect platform_refusal_changed_nothing "$(psql_db $DB -c "SELECT count(*) FROM t_route")" "$nroutes"
expect platform_refused_key_rotate "$(api POST "$P3" /v1/platform/attest/key/rotate '{}' | jq -r .code)" 5004
expect ops_endpoints_still_open "$(http_status "http://127.0.0.1:$P3/healthz")" 200
expect jwks_still_published "$(curl -s "http://127.0.0.1:$P3/.well-known/jwks.json" | jq '.keys | length > 0')" true
# an upload refused before its body is read: the body is dropped and the
# connection goes on with the next request
printf 'x,y\n1,2\n' >"$T_ROOT/small.csv"
r=$(curl -s -F namespace=n -F name=m -F "file=@$T_ROOT/small.csv" "http://127.0.0.1:$P3/v2/component/upload/file" --next -s "http://127.0.0.1:$P3/healthz")
expect refused_upload_then_next_request "$(printf '%s' "$r" | jq -rs '[.[0].code, .[1].code] | join(",")')" "5004,0"
expect platform_allowed_on_default_node "$(api GET "$P" /v1/platform/route/list | jq -r .code)" 0
gw_stop gwp
expect gwp_sigterm_exit_0 "$GW_RC" 0
check gwp_sanitizer_clean sanitizer_clean gwp

# --- client disconnects while its query waits ------------------------------------
( psql_db $DB -c "BEGIN; LOCK TABLE t_route IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;" >/dev/null ) &
lockpid=$!
sleep 0.3
curl -s -m 0.5 -H 'x-trace-id: gone-1' "http://127.0.0.1:$P/v1/platform/route/list" >/dev/null 2>&1
wait $lockpid
sleep 0.3
expect alive_after_client_gone "$(code_of "$(api GET "$P" /healthz)")" 0
# exactly one reply (one access line) for the request whose client left
expect client_gone_one_reply "$(grep -c '"trace_id":"gone-1"' "$T_ROOT/gw.log")" 1

# --- PostgreSQL restart: /readyz 503, then 200 without restarting us ------------
sh test/support/pg.sh stop "$PG_DIR" >/dev/null 2>&1
i=0
st=200
while [ $i -lt 50 ]; do
    st=$(http_status "http://127.0.0.1:$P/readyz")
    [ "$st" = 503 ] && break
    sleep 0.1
    i=$((i + 1))
done
expect readyz_503_when_db_down "$st" 503
r=$(api GET "$P" /readyz)
check readyz_gives_reason sh -c "printf '%s' '$r' | jq -r .data.reason | grep -q 'no live database connection'"
r=$(api GET "$P" /v1/platform/route/list)
expect db_down_clean_error "$(code_of "$r")" 6001
expect healthz_ok_while_db_down "$(code_of "$(api GET "$P" /healthz)")" 0
sh test/support/pg.sh start "$PG_DIR" >/dev/null 2>&1
if gw_ready "$P" 15; then pass readyz_200_after_db_back; else fail readyz_200_after_db_back "still not ready"; fi
r=$(api GET "$P" /v1/platform/route/list)
expect queries_work_after_db_back "$(code_of "$r")" 0

# --- SIGHUP: a broken file keeps the old config ----------------------------------
kill -HUP "$(gw_pid gw)"
sleep 0.3
expect alive_after_sighup "$(code_of "$(api GET "$P" /healthz)")" 0
check sighup_logged grep -q '"event":"config.reload"' "$T_ROOT/gw.log"

# --- SIGTERM drains an in-flight request ------------------------------------------
( psql_db $DB -c "BEGIN; LOCK TABLE t_route IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;" >/dev/null ) &
lockpid=$!
sleep 0.3
curl -s -m 10 "http://127.0.0.1:$P/v1/platform/route/list" >"$T_ROOT/drain.out" &
curlpid=$!
sleep 0.3
kill -TERM "$(gw_pid gw)"
sleep 0.2
st=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$P/healthz")
expect no_new_connections_while_draining "$st" 000
wait $curlpid
expect inflight_request_completed "$(code_of "$(cat "$T_ROOT/drain.out")")" 0
wait $lockpid
wait "$(gw_pid gw)"
expect sigterm_exit_0 "$?" 0
check sanitizer_clean sanitizer_clean gw
bad=0
while IFS= read -r line; do
    printf '%s' "$line" | jq -e . >/dev/null 2>&1 || bad=$((bad + 1))
done <"$T_ROOT/gw.log"
expect log_lines_all_json "$bad" 0
check log_never_has_dsn sh -c "! grep -q 'dbname=$DB' '$T_ROOT/gw.log'"

# t_auth.sh - signed node-to-node requests and key rotation, between real
# gateways on loopback (a real PostgreSQL each, a real Docker engine):
# a signed job runs; unsigned, unidentified, unknown-node, forged, stale,
# replayed, mis-targeted and wrong-key requests are refused with a message
# that names the problem and change nothing; a pinned key works; the node
# key rotates in the middle of a running job and the job still succeeds;
# launch tokens are refreshed while a container runs; a task exchanges its
# launch token for a presentation token that the partner's component has
# verified by its own gateway (single use, bound to job, task, role, nonce).
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started (see $DOCKER_STATE)"
    exit 0
fi
pass engine_available

A=JG0100001100000010 B=JG0100001100000020 C=JG0100001100000030
PA=$(free_port) PB=$(free_port)
R="$T_ROOT/auth-routes.yaml"
# No auth line: the standard profile requires signatures.
printf '%s:\n  host: 127.0.0.1\n  port: %s\n%s:\n  host: 127.0.0.1\n  port: %s\n' $A "$PA" $B "$PB" >"$R"
for n in aa ab; do new_db $n; done
# aa's launch tokens live 10 s, so they are refreshed every 8 s.
node_start aa $A "$PA" "$R" GW_SCHED_POLL_MS=200 GW_AUTH_JWKS_REFETCH_S=1 GW_AUTH_JWKS_MAX_AGE_S=2 GW_ATTEST_KEY_PUBLISH_S=2 GW_ATTEST_TOKEN_TTL_S=10
node_start ab $B "$PB" "$R" GW_SCHED_POLL_MS=200 GW_AUTH_JWKS_REFETCH_S=1 GW_AUTH_JWKS_MAX_AGE_S=2 GW_ATTEST_KEY_PUBLISH_S=2
gw_ready "$PA" 20 && gw_ready "$PB" 20
expect two_nodes_ready "$?" 0
for p in $PA $PB; do register_demo "$p" >/dev/null; done
upload "$PA" demo guest deploy/demo/data/guest.csv >/dev/null
upload "$PB" demo host deploy/demo/data/host.csv >/dev/null

# --- a real job between two nodes that require signatures --------------------
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json callback)")
expect signed_job_created "$(code_of "$r")" 0
J=$(printf '%s' "$r" | jq -r '.data.job_id // ""')
expect signed_job_succeeds "$(job_wait "$PA" "$J" 60)" success
expect signed_job_nothing_refused "$(cat "$T_ROOT/aa.log" "$T_ROOT/ab.log" | grep -c '"auth.refused"')" 0

KA="$T_ROOT/aa/data/keys/node-es256.pem"
POLL=/v1/interconn/schedule/task/poll
BODY='{"task_id":"no-such-task","role":"host.0"}'
printf '%s' "$BODY" >"$T_ROOT/body.json"
jobs_b() { psql_db ab -c "SELECT count(*) FROM t_job"; }
NJB=$(jobs_b)

# send PORT PATH BODY HEADERS-FILE: POST with the headers in the file.
send() {
    _hf=$4
    set --  -s -H 'Content-Type: application/json' --data-binary "$3" "http://127.0.0.1:$1$2"
    while IFS= read -r _h; do set -- "$@" -H "$_h"; done <"$_hf"
    curl "$@"
}
msg_of() { printf '%s' "$1" | jq -r '.msg // ""'; }
refused() { # NAME RESPONSE WORDS
    if [ "$(code_of "$2")" = 5004 ] && printf '%s' "$(msg_of "$2")" | grep -q "$3"; then
        pass "$1"
    else
        fail "$1" "got $2, want code 5004 naming '$3'"
    fi
}

# The real peer's key, properly signed: passes the check, reaches the handler.
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h1"
# (the handler answers: no such task)
expect signed_request_passes "$(code_of "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h1")")" 5002
refused replayed_nonce_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h1")" "replayed nonce"

printf 'x-source-node-id: %s\n' $A >"$T_ROOT/h2"
refused unsigned_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h2")" "unsigned request"
: >"$T_ROOT/h3"
refused unidentified_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h3")" "names no caller"
"$CTL_BIN" request sign --key "$KA" --from $C --to $B POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h4"
refused unknown_node_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h4")" "unknown node $C"

"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h5"
refused forged_body_refused "$(send "$PB" "$POLL" '{"task_id":"other-task","role":"host.0"}' "$T_ROOT/h5")" "bad signature"
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST "/v1/interconn/schedule/job/stop" "$T_ROOT/body.json" >"$T_ROOT/h6"
refused forged_path_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h6")" "bad signature"
old=$(( $(date +%s) * 1000 - 400000 ))
"$CTL_BIN" request sign --key "$KA" --from $A --to $B --timestamp $old POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h7"
refused stale_timestamp_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h7")" "stale timestamp"
"$CTL_BIN" request sign --key "$KA" --from $A --to $C POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h8"
refused other_target_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h8")" "signed for node $C"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T_ROOT/rogue.pem" 2>/dev/null
"$CTL_BIN" request sign --key "$T_ROOT/rogue.pem" --from $A --to $B POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h9"
refused rogue_key_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h9")" "unknown key"
sed 's/^x-nonce: .*/x-nonce: bad nonce!/' "$T_ROOT/h1" >"$T_ROOT/h10"
refused bad_nonce_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h10")" "x-nonce"
sed 's/^x-auth-sign: .*/x-auth-sign: HS256;kid=x;sig=abc/' "$T_ROOT/h1" >"$T_ROOT/h11"
refused malformed_sign_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h11")" "x-auth-sign"
grep -v '^x-timestamp' "$T_ROOT/h5" >"$T_ROOT/h12"
refused missing_timestamp_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h12")" "x-timestamp"

# A forged job/create changes nothing on the partner.
jc='{"job_id":"forged-job","dag":{},"config":{}}'
printf '%s' "$jc" >"$T_ROOT/jc.json"
"$CTL_BIN" request sign --key "$T_ROOT/rogue.pem" --from $A --to $B POST /v1/interconn/schedule/job/create "$T_ROOT/jc.json" >"$T_ROOT/h13"
refused forged_create_refused "$(send "$PB" /v1/interconn/schedule/job/create "$jc" "$T_ROOT/h13")" "unknown key"
expect forged_create_changes_nothing "$(jobs_b)" "$NJB"
check refusals_logged grep -q '"auth.refused"' "$T_ROOT/ab.log"

# --- a pinned key in the route table -------------------------------------------
JWK_A=$(curl -s "http://127.0.0.1:$PA/.well-known/jwks.json" | jq -c '.keys[0]')
r=$(api POST "$PB" /v1/platform/route/set "$(jq -nc --arg n $A --arg p "$PA" --arg k "$JWK_A" '{node_id:$n,host:"127.0.0.1",port:($p|tonumber),key:$k}')")
expect pin_set "$(code_of "$r")" 0
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h14"
expect pinned_key_passes "$(code_of "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h14")")" 5002
ROGUE_JWK=$("$CTL_BIN" key jwk "$T_ROOT/rogue.pem" 2>/dev/null)
r=$(api POST "$PB" /v1/platform/route/set "$(jq -nc --arg n $A --arg p "$PA" --arg k "$ROGUE_JWK" '{node_id:$n,host:"127.0.0.1",port:($p|tonumber),key:$k}')")
expect pin_other_set "$(code_of "$r")" 0
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h15"
refused pinned_other_key_refuses_real_key "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h15")" "pins"
r=$(api POST "$PB" /v1/platform/route/set '{"node_id":"JG0100001100000077","host":"127.0.0.1","port":9,"key":"{not a jwk"}')
expect pin_malformed_refused "$(code_of "$r")" 5001
r=$(api POST "$PB" /v1/platform/route/set "$(jq -nc --arg n $A --arg p "$PA" '{node_id:$n,host:"127.0.0.1",port:($p|tonumber)}')")
expect pin_removed "$(code_of "$r")" 0

# --- key rotation in the middle of a running job -------------------------------
KID0=$(curl -s "http://127.0.0.1:$PB/.well-known/jwks.json" | jq -r '.keys[0].kid')
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json callback '.config.task_params.common.hash_ids_0.sleep_ms = 4000')")
J2=$(printf '%s' "$r" | jq -r '.data.job_id // ""')
i=0
while [ "$(psql_db ab -c "SELECT count(*) FROM t_task WHERE job_id='$J2' AND status='RUNNING'")" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
r=$("$CTL_BIN" --url "http://127.0.0.1:$PB" --json key rotate)
expect rotate_code "$(code_of "$r")" 0
NEXT=$(printf '%s' "$r" | jq -r '.data.next_kid')
expect rotate_next_published "$(curl -s "http://127.0.0.1:$PB/.well-known/jwks.json" | jq -r --arg k "$NEXT" '[.keys[].kid] | index($k) != null')" true
expect rotate_still_signs_with_old "$(printf '%s' "$r" | jq -r .data.kid)" "$KID0"
expect rotate_bad_input "$(api POST "$PB" /v1/platform/attest/key/rotate '{"now":"yes"}' | jq -r .code)" 5001
expect rotate_bad_input_changes_nothing "$(curl -s "http://127.0.0.1:$PB/.well-known/jwks.json" | jq '.keys | length')" 2
sleep 3
expect rotate_activated "$(psql_db ab -c "SELECT kid FROM t_attest_key WHERE retired_at IS NULL")" "$NEXT"
expect rotated_job_succeeds "$(job_wait "$PA" "$J2" 60)" success
jw=$(curl -s "http://127.0.0.1:$PB/.well-known/jwks.json")
expect rotated_old_key_still_published "$(printf '%s' "$jw" | jq -r --arg k "$KID0" '[.keys[].kid] | index($k) != null')" true
expect rotated_key_file_is_new "$("$CTL_BIN" key jwk "$T_ROOT/ab/data/keys/node-es256.pem" | jq -r .kid)" "$NEXT"
expect rotated_old_private_key_gone "$(ls "$T_ROOT/ab/data/keys/" | tr '\n' ' ')" "node-es256.pem "
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll)")
J3=$(printf '%s' "$r" | jq -r '.data.job_id // ""')
expect job_after_rotation_succeeds "$(job_wait "$PA" "$J3" 60)" success

# An emergency rotation withdraws the old key at once.
cp "$KA" "$T_ROOT/ka-old.pem"
r=$("$CTL_BIN" --url "http://127.0.0.1:$PA" --json key rotate --now)
expect rotate_now_code "$(code_of "$r")" 0
jw=$(curl -s "http://127.0.0.1:$PA/.well-known/jwks.json")
KA0=$(psql_db aa -c "SELECT kid FROM t_attest_key WHERE not_after IS NOT NULL")
expect rotate_now_old_withdrawn "$(printf '%s' "$jw" | jq -r --arg k "$KA0" '[.keys[].kid] | index($k) == null')" true
sleep 2.5 # B's copy of A's JWKS goes stale (auth.jwks_max_age_s=2 here)
"$CTL_BIN" request sign --key "$T_ROOT/ka-old.pem" --from $A --to $B POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/h16"
refused withdrawn_key_refused "$(send "$PB" "$POLL" "$BODY" "$T_ROOT/h16")" "unknown key"
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json poll)")
J4=$(printf '%s' "$r" | jq -r '.data.job_id // ""')
expect job_after_emergency_rotation_succeeds "$(job_wait "$PA" "$J4" 60)" success

# --- launch token refresh and presentation tokens --------------------------------
r=$(api POST "$PA" /v1/platform/schedule/job/create_all "$(job_json callback ".config.task_params.common.hash_ids_0.sleep_ms = 30000 | .config.task_params.common.hash_ids_0.attest_audience = \"$B\"")")
J5=$(printf '%s' "$r" | jq -r '.data.job_id // ""')
i=0
while [ "$(psql_db aa -c "SELECT count(*) FROM t_task WHERE job_id='$J5' AND status='RUNNING'") $(psql_db ab -c "SELECT count(*) FROM t_task WHERE job_id='$J5' AND status='RUNNING'")" != "1 1" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
TID5=$(psql_db aa -c "SELECT task_id FROM t_task WHERE job_id='$J5' AND status='RUNNING'")
CNA=$(psql_db aa -c "SELECT container_name FROM t_task WHERE job_id='$J5' AND status='RUNNING'")
CNB=$(psql_db ab -c "SELECT container_name FROM t_task WHERE job_id='$J5' AND status='RUNNING'")
tok_a() { cat "$(tokdir aa "$CNA")/token.jwt" 2>/dev/null; }
TA0=$(tok_a)
TB=$(cat "$(tokdir ab "$CNB")/token.jwt" 2>/dev/null)
jti_of() { printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+' | { s=$(cat); case $((${#s} % 4)) in 2) s="$s==" ;; 3) s="$s=" ;; esac; printf '%s' "$s"; } | base64 -d 2>/dev/null | jq -r .jti; }
expect token_row_is_file "$(psql_db aa -c "SELECT token_id FROM t_task WHERE job_id='$J5' AND status='RUNNING'")" "$(jti_of "$TA0")"
# exchange(PORT, TOKEN, BODY)
xchg() { curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $2" --data-binary "$3" "http://127.0.0.1:$1/v1/platform/attest/token"; }
verify() { curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $2" --data-binary "$3" "http://127.0.0.1:$1/v1/platform/attest/verify"; }
N1=challenge-0001-$$
r=$(xchg "$PA" "$TA0" "{\"audience\":\"$B\",\"nonce\":\"$N1\"}")
expect exchange_code "$(code_of "$r")" 0
P1=$(printf '%s' "$r" | jq -r '.data.token // ""')
expect exchange_expires_in_default "$(printf '%s' "$r" | jq -r .data.expires_in)" 120
# flip the signature's first character (stays canonical base64url)
tamper() { _h=$(printf '%s' "$1" | cut -d. -f1,2); _s=$(printf '%s' "$1" | cut -d. -f3); case $_s in A*) _c=B ;; *) _c=A ;; esac; printf '%s.%s%s' "$_h" "$_c" "${_s#?}"; }
vbody() { jq -nc --arg t "$1" --arg i "$2" --arg n "$3" --arg k "$4" --arg r "$5" '{token:$t, expected:{typ:"present", iss:$i, nonce:$n, task_id:$k, self_role:$r}}'; }
r=$(verify "$PB" "$TB" "$(vbody "$P1" $A "$N1" "$TID5" guest.0)")
expect present_verifies_at_partner "$(code_of "$r") $(printf '%s' "$r" | jq -r '.data.valid')" "0 true"
expect present_claims_bound "$(printf '%s' "$r" | jq -r '[.data.claims.aud, .data.claims.bfia.job_id, .data.claims.bfia.self_role, .data.claims.bfia.launch_jti, .data.claims.eat_nonce] | join(",")')" "$B,$J5,guest.0,$(jti_of "$TA0"),$N1"
r=$(verify "$PB" "$TB" "$(vbody "$P1" $A "$N1" "$TID5" guest.0)")
expect present_replay_refused "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg)" "5004 E_REPLAY"
P2=$(xchg "$PA" "$TA0" "{\"audience\":\"$B\",\"nonce\":\"$N1\",\"ttl\":30}" | jq -r '.data.token // ""')
r=$(verify "$PB" "$TB" "$(vbody "$P2" $A "other-challenge" "$TID5" guest.0)")
expect present_wrong_nonce_refused "$(printf '%s' "$r" | jq -r .msg)" E_NONCE
r=$(verify "$PB" "$TB" "$(vbody "$P2" $A "$N1" task_other guest.0)")
expect present_as_other_task_refused "$(printf '%s' "$r" | jq -r .msg)" E_BINDING
r=$(verify "$PB" "$TB" "$(vbody "$P2" $A "$N1" "$TID5" host.0)")
expect present_as_other_role_refused "$(printf '%s' "$r" | jq -r .msg)" E_BINDING
r=$(verify "$PA" "$TA0" "$(vbody "$P2" $A "$N1" "$TID5" guest.0)")
expect present_wrong_audience_refused "$(printf '%s' "$r" | jq -r .msg)" E_AUD
r=$(verify "$PB" "$TB" "$(vbody "$(tamper "$P2")" $A "$N1" "$TID5" guest.0)")
expect present_tampered_refused "$(printf '%s' "$r" | jq -r .msg)" E_SIG
r=$(verify "$PB" "$TB" "$(vbody "$TA0" $A "$N1" "$TID5" guest.0)")
expect launch_token_as_present_refused "$(printf '%s' "$r" | jq -r .msg)" E_TYP
r=$(verify "$PB" "$TB" "$(vbody "$P2" $C "$N1" "$TID5" guest.0)")
refused present_unknown_issuer_refused "$r" "unknown node"
r=$(verify "$PB" "$TB" "$(vbody "$P2" $A "$N1" "$TID5" guest.0)")
expect present_still_verifies_once "$(printf '%s' "$r" | jq -r .data.valid)" true
# bad input to both endpoints: a clear code naming the field
refused exchange_without_launch_token "$(curl -s -H 'Content-Type: application/json' --data-binary "{\"audience\":\"$B\",\"nonce\":\"$N1\"}" "http://127.0.0.1:$PA/v1/platform/attest/token")" "launch token is required"
refused exchange_forged_launch_token "$(xchg "$PA" "$(tamper "$TA0")" "{\"audience\":\"$B\",\"nonce\":\"$N1\"}")" "E_SIG"
refused exchange_other_nodes_launch_token "$(xchg "$PA" "$TB" "{\"audience\":\"$B\",\"nonce\":\"$N1\"}")" "launch token refused"
r=$(xchg "$PA" "$TA0" "{\"audience\":\"$C\",\"nonce\":\"$N1\"}")
expect exchange_audience_not_a_party "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg | cut -c1-9)" "5001 audience:"
for bad in '{"nonce":"abcdefgh"}' "{\"audience\":\"$B\"}" "{\"audience\":\"$B\",\"nonce\":\"short\"}" "{\"audience\":\"$B\",\"nonce\":\"has space in it\"}" "{\"audience\":\"$B\",\"nonce\":\"$N1\",\"ttl\":301}" "{\"audience\":\"$B\",\"nonce\":\"$N1\",\"ttl\":\"x\"}" "{\"audience\":\"../etc\",\"nonce\":\"$N1\"}" "{\"audience\":42,\"nonce\":\"$N1\"}" '{"audience":' '[]'; do
    r=$(xchg "$PA" "$TA0" "$bad")
    expect "exchange_bad_input_$(printf '%s' "$bad" | cksum | cut -c1-6)" "$(code_of "$r")" 5001
done
for bad in '{}' "{\"token\":\"$P2\"}" "{\"token\":\"$P2\",\"expected\":{\"nonce\":\"$N1\"}}" "{\"token\":\"$P2\",\"expected\":{\"iss\":\"$A\"}}" "{\"token\":\"$P2\",\"expected\":{\"iss\":\"$A\",\"nonce\":\"$N1\",\"typ\":\"launch\"}}" "{\"token\":\"$P2\",\"expected\":{\"iss\":\"$A\",\"nonce\":\"$N1\",\"job_id\":\"job-of-someone-else\"}}" "{\"token\":7,\"expected\":{}}" '{"token":'; do
    r=$(verify "$PB" "$TB" "$bad")
    expect "verify_bad_input_$(printf '%s' "$bad" | cksum | cut -c1-6)" "$(code_of "$r")" 5001
done
r=$(curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $TB" --data-binary "{\"token\":\"$(head -c 20000 /dev/zero | tr '\0' a)\",\"expected\":{\"iss\":\"$A\",\"nonce\":\"$N1\"}}" "http://127.0.0.1:$PB/v1/platform/attest/verify")
expect verify_oversized_body "$(code_of "$r")" 5005
big=$(head -c 6000 /dev/zero | tr '\0' a)
expect exchange_oversized_body "$(code_of "$(xchg "$PA" "$TA0" "{\"audience\":\"$B\",\"nonce\":\"$big\"}")")" 5005
expect rotate_oversized_body "$(api POST "$PB" /v1/platform/attest/key/rotate "{\"pad\":\"$big\"}" | jq -r .code)" 5005
# The task socket (system.attest): the container asked on it, with no
# credential, at start (the demo's attest_audience switch); the socket alone
# says which container calls, so a forged body or someone else's bearer
# token changes nothing, and only the attestation endpoints answer on it.
PROBE="$T_ROOT/aa/data/storage/attest-probe/$TID5.guest.0.json"
i=0
while [ ! -s "$PROBE" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect socket_probe_from_container "$(jq -r .code "$PROBE" 2>/dev/null)" 0
r=$(verify "$PB" "$TB" "$(vbody "$(jq -r '.data.token // ""' "$PROBE")" $A "probe-$TID5" "$TID5" guest.0)")
expect socket_probe_token_verifies_at_partner "$(code_of "$r") $(printf '%s' "$r" | jq -r '.data.valid')" "0 true"
SOCK="$(tokdir aa "$CNA")/agent.sock"
check task_socket_exists test -S "$SOCK"
sx() { curl -s --unix-socket "$SOCK" -H 'Content-Type: application/json' "$@"; }
r=$(sx --data-binary "{\"audience\":\"$B\",\"nonce\":\"$N1\",\"task_id\":\"task_forged\",\"job_id\":\"job-forged\",\"self_role\":\"host.0\"}" http://task/v1/platform/attest/token)
expect socket_exchange_without_bearer "$(code_of "$r")" 0
r=$(verify "$PB" "$TB" "$(vbody "$(printf '%s' "$r" | jq -r '.data.token // ""')" $A "$N1" "$TID5" guest.0)")
expect socket_claims_from_record_not_body "$(printf '%s' "$r" | jq -r '[.data.valid, .data.claims.bfia.job_id, .data.claims.bfia.task_id, .data.claims.bfia.self_role] | join(",")')" "true,$J5,$TID5,guest.0"
r=$(sx -H "Authorization: Bearer $TB" --data-binary "{\"audience\":\"$B\",\"nonce\":\"$N1\"}" http://task/v1/platform/attest/token)
r=$(verify "$PB" "$TB" "$(vbody "$(printf '%s' "$r" | jq -r '.data.token // ""')" $A "$N1" "$TID5" guest.0)")
expect socket_ignores_other_bearer "$(printf '%s' "$r" | jq -r '[.data.valid, .data.claims.bfia.self_role] | join(",")')" "true,guest.0"
r=$(sx --data-binary '{}' http://task/v1/platform/attest/key/rotate)
expect socket_refuses_key_rotate "$(code_of "$r")" 5006
expect socket_refuses_ops "$(code_of "$(curl -s --unix-socket "$SOCK" http://task/healthz)")" 5006
expect socket_refuses_unknown_path "$(code_of "$(sx --data-binary '{}' http://task/v1/platform/schedule/job/stop_all)")" 5006
before=$(tok_a)
r=$(sx --data-binary '{"refresh":true}' http://task/v1/platform/attest/token)
got=$(printf '%s' "$r" | jq -r '.data.token // ""')
check socket_refresh_is_current_token sh -c "[ -n '$got' ] && { [ '$got' = '$before' ] || [ '$got' = '$(tok_a)' ]; }"
before=$(tok_a)
got=$(xchg "$PA" "$TA0" '{"refresh":true}' | jq -r '.data.token // ""')
check bearer_refresh_is_current_token sh -c "[ -n '$got' ] && { [ '$got' = '$before' ] || [ '$got' = '$(tok_a)' ]; }"
expect socket_refresh_wrong_type "$(code_of "$(sx --data-binary '{"refresh":"yes"}' http://task/v1/platform/attest/token)")" 5001
expect socket_exchange_bad_json "$(code_of "$(sx --data-binary '{"audience":' http://task/v1/platform/attest/token)")" 5001
# introspection (spec 2.10, RFC 7662): the token's audience asks A, signed;
# the answer follows the container, and asking uses nothing up
KB="$T_ROOT/ab/data/keys/node-es256.pem"
IS=/v1/interconn/attest/introspect
introspect_raw() { # BODY
    printf '%s' "$1" >"$T_ROOT/is.json"
    "$CTL_BIN" request sign --key "$KB" --from $B --to $A POST "$IS" "$T_ROOT/is.json" >"$T_ROOT/his"
    send "$PA" "$IS" "$1" "$T_ROOT/his"
}
introspect() { introspect_raw "{\"token\":\"$1\"}"; }
PI=$(sx --data-binary "{\"audience\":\"$B\",\"nonce\":\"introspect-01\"}" http://task/v1/platform/attest/token | jq -r '.data.token // ""')
r=$(introspect "$PI")
expect introspect_live "$(code_of "$r") $(printf '%s' "$r" | jq -r '[.data.active, .data.container_running] | join(",")')" "0 true,true"
r=$(introspect "$(tamper "$PI")")
expect introspect_tampered_inactive "$(printf '%s' "$r" | jq -r '[.data.active, .data.reason] | join(",")')" "false,E_SIG"
PIA=$(sx --data-binary "{\"audience\":\"$A\",\"nonce\":\"introspect-02\"}" http://task/v1/platform/attest/token | jq -r '.data.token // ""')
refused introspect_other_audience_refused "$(introspect "$PIA")" "only a token's audience"
printf 'x-source-node-id: %s\n' $B >"$T_ROOT/hu"
refused introspect_unsigned_refused "$(send "$PA" "$IS" "{\"token\":\"$PI\"}" "$T_ROOT/hu")" "unsigned request"
expect introspect_missing_token "$(code_of "$(introspect_raw '{}')")" 5001
expect introspect_token_wrong_type "$(code_of "$(introspect_raw '{"token":42}')")" 5001
expect introspect_malformed_json "$(code_of "$(introspect_raw '{"token":')")" 5001
expect introspect_oversized_body "$(code_of "$(introspect_raw "{\"token\":\"$(head -c 20000 /dev/zero | tr '\0' a)\"}")")" 5005
expect introspect_token_over_limit "$(code_of "$(introspect_raw "{\"token\":\"$(head -c 9000 /dev/zero | tr '\0' a)\"}")")" 5001
r=$(verify "$PB" "$TB" "$(vbody "$PI" $A "introspect-01" "$TID5" guest.0)")
expect introspected_token_still_usable_once "$(printf '%s' "$r" | jq -r .data.valid)" true
# refresh: the file gets a new token every 8 s; the row follows, and the
# previous token stays accepted until the next refresh
i=0
while [ "$(tok_a)" = "$TA0" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
TA1=$(tok_a)
check token_refreshed_while_running test -n "$TA1" -a "$TA1" != "$TA0"
expect refreshed_token_row "$(psql_db aa -c "SELECT token_id || ' ' || prev_token_id FROM t_task WHERE job_id='$J5' AND task_id='$TID5'")" "$(jti_of "$TA1") $(jti_of "$TA0")"
printf '%s\n' "$TA1" >"$T_ROOT/ta1.jwt"
check refreshed_token_verifies "$CTL_BIN" --url "http://127.0.0.1:$PA" token verify "$T_ROOT/ta1.jwt"
expect previous_token_still_accepted "$(code_of "$(xchg "$PA" "$TA0" "{\"audience\":\"$B\",\"nonce\":\"$N1\"}")")" 0
i=0
while [ "$(tok_a)" = "$TA1" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
refused token_two_refreshes_old_refused "$(xchg "$PA" "$TA0" "{\"audience\":\"$B\",\"nonce\":\"$N1\"}")" "not the live token"
# a restarted gateway adopts the running container and refreshes its token at once
TA2=$(tok_a)
kill -9 "$(gw_pid aa)"
sleep 0.3
node_start aa $A "$PA" "$R" GW_SCHED_POLL_MS=200 GW_AUTH_JWKS_REFETCH_S=1 GW_AUTH_JWKS_MAX_AGE_S=2 GW_ATTEST_KEY_PUBLISH_S=2 GW_ATTEST_TOKEN_TTL_S=10
gw_ready "$PA" 20
i=0
while [ "$(tok_a)" = "$TA2" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
TA3=$(tok_a)
check token_refreshed_on_adoption test -n "$TA3" -a "$TA3" != "$TA2"
check task_socket_after_adoption test -S "$SOCK"
expect socket_exchange_after_adoption "$(code_of "$(sx --data-binary "{\"audience\":\"$B\",\"nonce\":\"$N1\"}" http://task/v1/platform/attest/token)")" 0
expect adopted_token_row "$(psql_db aa -c "SELECT token_id FROM t_task WHERE job_id='$J5' AND task_id='$TID5'")" "$(jti_of "$TA3")"
expect refreshed_job_succeeds "$(job_wait "$PA" "$J5" 60)" success
i=0
while [ -e "$SOCK" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check task_socket_removed_after_exit test ! -e "$SOCK"
r=$(introspect "$PI")
expect introspect_after_exit_inactive "$(code_of "$r") $(printf '%s' "$r" | jq -r '[.data.active, .data.container_running] | join(",")')" "0 false,false"
expect refreshed_token_callback_accepted "$(psql_db aa -c "SELECT status_channel FROM t_task WHERE job_id='$J5' AND task_id='$TID5'")" callback
refused exchange_after_exit_refused_live "$(xchg "$PA" "$TA1" "{\"audience\":\"$B\",\"nonce\":\"$N1\"}")" "not the live token"

# a task's attestation calls are rate-limited (attest.exchange_per_s, 10/s, burst 20)
: >"$T_ROOT/rl.out"
rl_t0=$(date +%s%N)
for i in $(seq 40); do xchg "$PA" "$TA1" "{\"audience\":\"$B\",\"nonce\":\"$N1\"}" >>"$T_ROOT/rl.out"; echo >>"$T_ROOT/rl.out"; done
rl_ms=$(( ($(date +%s%N) - rl_t0) / 1000000 ))
expect exchange_rate_limited "$(jq -r 'select(.code == 6004) | .msg' "$T_ROOT/rl.out" | grep -c 'attest.exchange_per_s')" "$(jq -r 'select(.code == 6004) | .code' "$T_ROOT/rl.out" | wc -l)"
# 10/s with a burst of 20: however slow this machine is, at most
# 20 + 10 x (elapsed s) + 1 of the 40 get through the limiter, and some do not
limited=$(jq -r 'select(.code == 6004) | .code' "$T_ROOT/rl.out" | wc -l)
passed=$((40 - limited))
allowed=$(( 21 + (10 * rl_ms + 999) / 1000 ))
check exchange_rate_limit_hit sh -c "[ $limited -ge 1 ] && [ $passed -le $allowed ]"

# --- TEE evidence: this node attests in software and says so ------------------
EV=/v1/interconn/attest/evidence
printf '%s' '{"nonce":"00ff11ee22dd"}' >"$T_ROOT/ev.json"
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST "$EV" "$T_ROOT/ev.json" >"$T_ROOT/h20"
r=$(send "$PB" "$EV" '{"nonce":"00ff11ee22dd"}' "$T_ROOT/h20")
expect evidence_software_attester "$(code_of "$r") $(printf '%s' "$r" | jq -r '.msg + " " + .data.attester')" "1 software-attester software"
refused evidence_unsigned_refused "$(curl -s -H 'Content-Type: application/json' -H "x-source-node-id: $A" --data-binary '{"nonce":"00ff"}' "http://127.0.0.1:$PB$EV")" "x-auth-sign is required"
printf '%s' '{"nonce":"not hex!"}' >"$T_ROOT/ev2.json"
"$CTL_BIN" request sign --key "$KA" --from $A --to $B POST "$EV" "$T_ROOT/ev2.json" >"$T_ROOT/h21"
expect evidence_bad_nonce "$(code_of "$(send "$PB" "$EV" '{"nonce":"not hex!"}' "$T_ROOT/h21")")" 5001

for n in aa ab; do
    gw_stop $n
    expect "${n}_exit_clean" "$GW_RC" 0
    check "${n}_sanitizer_clean" sanitizer_clean $n
done

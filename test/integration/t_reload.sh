# t_reload.sh - SIGHUP reload, driven by the key table (issue 13 item 8):
# each reloadable key is changed in the file, a real SIGHUP is sent, and the
# test observes the key's effect on requests (never the log line that says
# "applied"); a changed key that needs a restart keeps its running value.
# Faults no real component produces on demand come from test/support/
# stallsock.c (an engine and a peer that accept and never answer).
. test/integration/lib.sh

DB=t_reload
new_db "$DB"
P=$(free_port)
PSTALL=$(free_port)
CFG="$T_ROOT/gr.yaml"
LOG="$T_ROOT/gr.log"
ROUTES="$T_ROOT/gr-routes.yaml"
STALL="$OUT/tools/stallsock"
SLOW="$OUT/tools/slowconn"
RAW="$OUT/tools/rawreq"
DSOCK="$T_ROOT/engine.sock"
mkdir -p "$T_ROOT/gr"
: >"$ROUTES"

# The file's values; each test changes one and reloads.
PORT=$P BODY_MAX=1048576 HEADER_MAX=65536 TIMEOUT=30 HT=10 BT=30 BMR=16384 MCPA=1024 MC=4096
PALLOW="127.0.0.0/8,::1" QMAX=100 DTO=1 LOGL=info SHUT=10 UPMAX=1048576 WIN=300 KPUB=330 PTO=500
MAXAGE=300 REFETCH=60
write_cfg() {
    cat >"$CFG" <<EOF
node_id: JG0100001100000010
http:
  host: 127.0.0.1
  port: $PORT
  body_max: $BODY_MAX
  header_max: $HEADER_MAX
  timeout_s: $TIMEOUT
  header_timeout_s: $HT
  body_timeout_s: $BT
  body_min_rate: $BMR
  max_conns_per_addr: $MCPA
  max_conns: $MC
  platform_allow: "$PALLOW"
db:
  dsn: "$(dsn_for "$DB")"
  pool_size: 2
  queue_max: $QMAX
  startup_wait_s: 10
docker:
  host: unix://$DSOCK
  timeout_s: $DTO
routes_file: $ROUTES
data_dir: $T_ROOT/gr/data
log:
  level: $LOGL
shutdown_timeout_s: $SHUT
upload:
  max: $UPMAX
auth:
  window_s: $WIN
  jwks_max_age_s: $MAXAGE
  jwks_refetch_s: $REFETCH
attest:
  key_publish_s: $KPUB
peer:
  timeout_ms: $PTO
transport:
  port: 0
EOF
}

# hup: rewrite the file, SIGHUP, wait until the reload is logged as done.
hup() {
    write_cfg
    _n0=$(grep -c '"msg":"configuration reloaded"' "$LOG")
    kill -HUP "$GPID"
    _i=0
    while [ $_i -lt 50 ]; do
        [ "$(grep -c '"msg":"configuration reloaded"' "$LOG")" -gt "$_n0" ] && return 0
        sleep 0.1
        _i=$((_i + 1))
    done
    echo "reload not logged"
}

ms_of() { # CMD...: milliseconds the command took
    _t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    echo $((($(date +%s%N) - _t0) / 1000000))
}

# An engine that accepts and never answers, and a peer that does the same.
"$STALL" "unix:$DSOCK" 600 >"$T_ROOT/engine-stall.out" &
ESPID=$!
"$STALL" "tcp:$PSTALL" 600 >"$T_ROOT/peer-stall.out" &
PSPID=$!
sleep 0.2
write_cfg
"$GW_BIN" -c "$CFG" >>"$LOG" 2>&1 &
GPID=$!
echo $GPID >"$T_ROOT/gr.pid"
if gw_ready "$P" 30; then pass gateway_ready; else fail gateway_ready "no 200"; tail -5 "$LOG"; exit 1; fi

# --- log.level ---------------------------------------------------------------
curl -s "http://127.0.0.1:$P/healthz?before=1" >/dev/null
LOGL=debug hup
curl -s "http://127.0.0.1:$P/healthz?after=1" >/dev/null
sleep 0.2
expect log_level_reloaded "$(grep -c '"path":"/healthz"' "$LOG")" 1

# --- http.body_max and upload.max (evhttp's own cap is the larger) ----------------
head -c 200000 /dev/zero | tr '\0' 'a' >"$T_ROOT/200k"
st() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect body_max_before "$(st -X POST --data-binary @"$T_ROOT/200k" "http://127.0.0.1:$P/v1/platform/route/list")" 200
BODY_MAX=100000 UPMAX=100000 hup
expect body_max_reloaded "$(st -X POST --data-binary @"$T_ROOT/200k" "http://127.0.0.1:$P/v1/platform/route/list")" 413
head -c 60000 /dev/zero | tr '\0' 'b' >"$T_ROOT/60k"
r=$(curl -s -F namespace=rl -F name=u1 -F "file=@$T_ROOT/60k" "http://127.0.0.1:$P/v2/component/upload/file")
expect upload_max_before "$(code_of "$r")" 0
UPMAX=40000 BODY_MAX=100000 hup
r=$(curl -s -F namespace=rl -F name=u2 -F "file=@$T_ROOT/60k" "http://127.0.0.1:$P/v2/component/upload/file" -w ' %{http_code}')
case "$r" in *5005*|*" 413") pass upload_max_reloaded ;; *) fail upload_max_reloaded "$r" ;; esac
BODY_MAX=1048576 UPMAX=1048576 hup

# --- http.header_max -----------------------------------------------------------
hdr=$(head -c 3000 /dev/zero | tr '\0' 'h')
expect header_max_before "$(st -H "X-Big: $hdr" "http://127.0.0.1:$P/healthz")" 200
HEADER_MAX=2048 hup
expect header_max_reloaded "$(st -H "X-Big: $hdr" "http://127.0.0.1:$P/healthz")" 431
HEADER_MAX=65536 hup

# --- http.timeout_s: an idle kept-alive connection is closed after it ---------------
printf 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n' | "$RAW" "$P" 3 >/dev/null
expect keepalive_timeout_before "$?" 3
TIMEOUT=1 hup
printf 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n' | "$RAW" "$P" 4 >/dev/null
expect keepalive_timeout_reloaded "$?" 0
TIMEOUT=30 hup

# --- http.header_timeout_s, http.body_timeout_s, http.body_min_rate -------------------
r=$("$SLOW" "$P" head 1 3 127.0.0.2 300)
expect header_timeout_before "$(printf '%s' "$r" | grep -o 'closed=[0-9]*')" closed=0
HT=1 hup
r=$("$SLOW" "$P" head 1 4 127.0.0.2 300)
expect header_timeout_reloaded "$(printf '%s' "$r" | grep -o 'closed=[0-9]*')" closed=1
HT=10 BT=1 BMR=1 hup
# one body byte every 300 ms earns more than a second each at 1 B/s
r=$("$SLOW" "$P" body 1 4 127.0.0.3 300)
expect body_min_rate_earns_time "$(printf '%s' "$r" | grep -o 'closed=[0-9]*')" closed=0
BT=1 BMR=100000 hup
r=$("$SLOW" "$P" body 1 4 127.0.0.3 300)
expect body_timeout_and_min_rate_reloaded "$(printf '%s' "$r" | grep -o 'closed=[0-9]*')" closed=1
BT=30 BMR=16384 hup

# --- http.max_conns_per_addr ---------------------------------------------------------
r=$("$SLOW" "$P" idle 6 1 127.0.0.4)
expect per_addr_cap_before "$(printf '%s' "$r" | grep -o 'closed=[0-9]*')" closed=0
MCPA=4 hup
r=$("$SLOW" "$P" idle 6 1 127.0.0.4)
expect per_addr_cap_reloaded "$(printf '%s' "$r" | grep -o 'answered=[0-9]*')" answered=2
MCPA=1024 hup

# --- http.platform_allow ---------------------------------------------------------------
expect platform_allow_before "$(code_of "$(api GET "$P" /v1/platform/route/list)")" 0
PALLOW=10.0.0.0/8 hup
expect platform_allow_reloaded "$(code_of "$(api GET "$P" /v1/platform/route/list)")" 5004
PALLOW="127.0.0.0/8,::1" hup

# --- http.max_conns and db.queue_max (pool of 2, table locked) ----------------------------
BPIDS=""
blocked() { # N: start N requests that wait on the locked table; prints codes when done
    _i=1
    while [ "$_i" -le "$1" ]; do
        curl -s -m 10 -w ' %{http_code}\n' "http://127.0.0.1:$P/v1/platform/route/list" >"$T_ROOT/b$_i.out" &
        BPIDS="$BPIDS $!"
        _i=$((_i + 1))
    done
}
lock() { ( psql_db "$DB" -c "BEGIN; LOCK TABLE t_route IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($1); COMMIT;" >/dev/null ) & BPIDS="$BPIDS $!"; }
waitb() { for _p in $BPIDS; do wait "$_p"; done; BPIDS=""; }
busy_count() { cat "$T_ROOT"/b*.out 2>/dev/null | grep -c "$1"; }
lock 2
sleep 0.4
rm -f "$T_ROOT"/b*.out
blocked 6
sleep 0.6
expect queue_max_before "$(busy_count '"code":6004')" 0
waitb
QMAX=1 hup
lock 2
sleep 0.4
rm -f "$T_ROOT"/b*.out
blocked 6
sleep 0.6
expect queue_max_reloaded "$(busy_count '"code":6004')" 3
waitb
QMAX=100 MC=1 hup
lock 2
sleep 0.4
rm -f "$T_ROOT"/b*.out
blocked 4
sleep 0.6
waitb
if [ "$(busy_count ' 503')" -ge 2 ]; then pass max_conns_reloaded; else fail max_conns_reloaded "$(cat "$T_ROOT"/b*.out | tr '\n' ' ')"; fi
MC=4096 hup

# --- routes_file ----------------------------------------------------------------------------
expect routes_file_before "$(api GET "$P" '/v1/platform/route/get?node_id=JG0100001100000055' | jq -r .code)" 5002
printf 'JG0100001100000055:\n  host: 127.0.0.1\n  port: 9\n' >"$T_ROOT/gr-routes2.yaml"
ROUTES="$T_ROOT/gr-routes2.yaml"
hup
sleep 0.5
expect routes_file_reloaded "$(api GET "$P" '/v1/platform/route/get?node_id=JG0100001100000055' | jq -r .data.port)" 9

# --- docker.timeout_s: the stalled engine is given up on after it ------------------------------
reg() { api POST "$P" /v2/provider/register "$(cat test/unit/data/provider-register-unionpay.json)" >"$T_ROOT/reg.out"; }
t1=$(ms_of reg)
DTO=4 hup
t2=$(ms_of reg)
echo "provider register against a stalled engine: ${t1} ms with docker.timeout_s=1, ${t2} ms with 4"
if [ "$t1" -lt 2500 ] && [ "$t2" -ge 3500 ]; then pass docker_timeout_reloaded; else fail docker_timeout_reloaded "$t1 ms then $t2 ms"; fi
DTO=1 hup

# --- peer.timeout_ms: a signed request whose caller's JWKS hangs ----------------------------
X=JG0100001100000077
printf 'JG0100001100000055:\n  host: 127.0.0.1\n  port: 9\n%s:\n  host: 127.0.0.1\n  port: %s\n  auth: required\n' "$X" "$PSTALL" >"$T_ROOT/gr-routes2.yaml"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T_ROOT/x.pem" 2>/dev/null
hup
sleep 0.5
POLL=/v1/interconn/schedule/task/poll
BODY='{"task_id":"no-such-task","role":"host.0"}'
printf '%s' "$BODY" >"$T_ROOT/body.json"
send() { # HEADERFILE: the signed poll, the response body on stdout
    set -- -s -m 20 -H 'Content-Type: application/json' --data-binary "$BODY" "http://127.0.0.1:$P$POLL" -H "@$1"
    curl "$@"
}
"$CTL_BIN" request sign --key "$T_ROOT/x.pem" --from $X --to JG0100001100000010 POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/hx1"
t1=$(ms_of send "$T_ROOT/hx1")
PTO=2000 hup
"$CTL_BIN" request sign --key "$T_ROOT/x.pem" --from $X --to JG0100001100000010 POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/hx2"
t2=$(ms_of send "$T_ROOT/hx2")
echo "signed request, caller's JWKS stalled: ${t1} ms with peer.timeout_ms=500, ${t2} ms with 2000"
if [ "$t1" -lt 1800 ] && [ "$t2" -ge 2000 ]; then pass peer_timeout_reloaded; else fail peer_timeout_reloaded "$t1 ms then $t2 ms"; fi

# --- auth.window_s: a signature 100 s old ---------------------------------------------------
Y=JG0100001100000078
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T_ROOT/y.pem" 2>/dev/null
pin=$("$CTL_BIN" key jwk "$T_ROOT/y.pem")
printf '%s:\n  host: 127.0.0.1\n  port: 9\n  auth: required\n  key: %s\n' "$Y" "'$pin'" >>"$T_ROOT/gr-routes2.yaml"
hup
sleep 0.5
old=$(( $(date +%s) * 1000 - 100000 ))
"$CTL_BIN" request sign --key "$T_ROOT/y.pem" --from $Y --to JG0100001100000010 --timestamp $old POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/hy1"
expect auth_window_before "$(code_of "$(send "$T_ROOT/hy1")")" 5002
WIN=60 hup
"$CTL_BIN" request sign --key "$T_ROOT/y.pem" --from $Y --to JG0100001100000010 --timestamp $old POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/hy2"
r=$(send "$T_ROOT/hy2")
expect auth_window_reloaded "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg | grep -o 'stale timestamp')" "5004 stale timestamp"

# --- auth.jwks_max_age_s, auth.jwks_refetch_s: node Z's JWKS is this node's own ---------
Z=JG0100001100000079
printf '%s:\n  host: 127.0.0.1\n  port: %s\n  auth: required\n' "$Z" "$P" >>"$T_ROOT/gr-routes2.yaml"
hup
sleep 0.5
KEY="$T_ROOT/gr/data/keys/node-es256.pem"
fetches() { grep -c '"path":"/v1/interconn/attest/jwks"' "$LOG"; }
zsend() { # KEYFILE: a poll signed as Z with that key
    "$CTL_BIN" request sign --key "$1" --from $Z --to JG0100001100000010 POST "$POLL" "$T_ROOT/body.json" >"$T_ROOT/hz"
    send "$T_ROOT/hz"
}
f0=$(fetches)
expect jwks_first_request_passes "$(code_of "$(zsend "$KEY")")" 5002
expect jwks_cached_while_fresh "$(code_of "$(zsend "$KEY")") $(($(fetches) - f0))" "5002 1"
MAXAGE=1 hup
sleep 1.5
expect jwks_max_age_reloaded "$(code_of "$(zsend "$KEY")") $(($(fetches) - f0))" "5002 2"
# an unknown kid refetches at most every auth.jwks_refetch_s (60 s)
MAXAGE=300 hup
expect jwks_unknown_kid_refetches "$(code_of "$(zsend "$T_ROOT/x.pem")") $(($(fetches) - f0))" "5004 3"
expect jwks_unknown_kid_not_again "$(code_of "$(zsend "$T_ROOT/x.pem")") $(($(fetches) - f0))" "5004 3"
REFETCH=0 hup
expect jwks_refetch_reloaded "$(code_of "$(zsend "$T_ROOT/x.pem")") $(($(fetches) - f0))" "5004 4"

# --- attest.key_publish_s: how long a rotated key is published before it signs -------------
KPUB=100 hup
r=$(api POST "$P" /v1/platform/attest/key/rotate '{}')
in_s=$(printf '%s' "$r" | jq -r '.data.activate_in_s // empty')
if [ -n "$in_s" ] && [ "$in_s" -le 100 ] && [ "$in_s" -ge 95 ]; then pass key_publish_reloaded; else fail key_publish_reloaded "$r"; fi

# --- a key that needs a restart keeps its running value ----------------------------------------
P9=$(free_port)
PORT=$P9 hup
expect port_change_needs_restart "$(http_status "http://127.0.0.1:$P/healthz")/$(http_status "http://127.0.0.1:$P9/healthz")" "200/000"
check port_change_reported grep -q '"msg":"changed key needs a restart; keeping the running value","setting":"http.port"' "$LOG"
PORT=$P

# --- an invalid file changes nothing ------------------------------------------------------------
printf 'node_id: JG0100001100000010\nhttp:\n  prot: 1\n' >"$CFG"
kill -HUP "$GPID"
sleep 0.5
check invalid_file_refused grep -q '"msg":"new configuration is invalid; keeping the old one"' "$LOG"
expect invalid_file_kept_running "$(code_of "$(api GET "$P" /v1/platform/route/list)")" 0

# --- shutdown_timeout_s: SIGTERM with a request stuck waits only the new deadline ----------------
SHUT=1 hup
BPIDS=""
lock 6
sleep 0.4
curl -s -m 10 "http://127.0.0.1:$P/v1/platform/route/list" >"$T_ROOT/shut.out" &
cp=$!
sleep 0.4
t0=$(date +%s%N)
kill -TERM "$GPID"
wait "$GPID"
rc=$?
t1=$(( ($(date +%s%N) - t0) / 1000000 ))
wait $cp
echo "SIGTERM with a stuck request: exit $rc after ${t1} ms (shutdown_timeout_s 10 -> 1)"
if [ "$rc" = 0 ] && [ "$t1" -lt 3000 ]; then pass shutdown_timeout_reloaded; else fail shutdown_timeout_reloaded "exit $rc after $t1 ms"; fi
expect stuck_request_answered_6005 "$(code_of "$(cat "$T_ROOT/shut.out")")" 6005
waitb
check gr_sanitizer_clean sanitizer_clean gr
kill "$ESPID" "$PSPID" 2>/dev/null
wait "$ESPID" "$PSPID" 2>/dev/null
true

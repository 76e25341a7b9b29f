# test/integration/lib.sh - helpers shared by the integration scripts.
#
# Sourced by test/integration/t_*.sh, which test/run.sh starts with T_ROOT
# (a private temp dir), PG_DIR (a running private PostgreSQL), DOCKER_STATE
# and OUT (the sanitizer build) in the environment.  Each check prints one
# "PASS: name" or "FAIL: name - why" line; run.sh counts them.
set -u
: "${T_ROOT:?run me through test/run.sh}"
: "${OUT:=build/san}"
GW_BIN="$OUT/gateway"
CTL_BIN="$OUT/bfiactl"
PGHOST_DIR="$PG_DIR/run"

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1 - $2"; }

# check NAME CMD...: PASS when CMD exits 0.
check() {
    _n=$1
    shift
    if "$@" >/dev/null 2>&1; then pass "$_n"; else fail "$_n" "command failed: $*"; fi
}

# expect NAME GOT WANT
expect() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', want '$3'"; fi
}

psql_db() { _db=$1; shift; psql -X -q -t -A -h "$PGHOST_DIR" -U postgres -d "$_db" "$@"; }

# new_db NAME: a fresh empty database in the shared private cluster.
new_db() {
    psql_db postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
    psql_db postgres -c "CREATE DATABASE \"$1\"" >/dev/null
}

dsn_for() { echo "host=$PGHOST_DIR dbname=$1 user=postgres"; }

# free_port: a TCP port on 127.0.0.1 that no socket uses.  Taken below the
# kernel's ephemeral range (ip_local_port_range), so an outgoing connection
# made meanwhile cannot be holding it when the gateway binds.
free_port() {
    _lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$_lo" -gt 12000 ] 2>/dev/null || _lo=32768
    while :; do
        _p=$(( ( $(od -An -N2 -tu2 /dev/urandom) % (_lo - 11000) ) + 10000 ))
        if [ -z "$(ss -Htan "sport = :$_p" 2>/dev/null)" ]; then
            echo "$_p"
            return
        fi
    done
}

# gw_start NAME PORT DB [VAR=value ...]: start a gateway in the background.
# Its stderr (JSON log lines) goes to $T_ROOT/NAME.log.
gw_start() {
    _name=$1 _port=$2 _db=$3
    shift 3
    mkdir -p "$T_ROOT/$_name"
    env GW_NODE_ID="${GW_NODE_ID_OVERRIDE:-JG01000011000000${_port#??}}" \
        GW_HTTP_HOST=127.0.0.1 GW_HTTP_PORT="$_port" GW_DB_DSN="$(dsn_for "$_db")" \
        GW_DATA_DIR="$T_ROOT/$_name/data" GW_LOG_LEVEL=info GW_ROUTES_FILE=/dev/null \
        "$@" "$GW_BIN" -c conf/test.yaml >>"$T_ROOT/$_name.log" 2>&1 &
    echo $! >"$T_ROOT/$_name.pid"
}

gw_pid() { cat "$T_ROOT/$1.pid"; }

# gw_ready PORT [SECONDS]: wait until /readyz answers 200.
gw_ready() {
    _i=0
    _max=$(( ${2:-10} * 10 ))
    while [ $_i -lt $_max ]; do
        _c=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz" 2>/dev/null)
        [ "$_c" = 200 ] && return 0
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}

# gw_stop NAME: SIGTERM and wait; the exit status is left in GW_RC (not a
# subshell: only this shell can wait for its children).
gw_stop() {
    _pid=$(gw_pid "$1")
    kill -TERM "$_pid" 2>/dev/null
    wait "$_pid"
    GW_RC=$?
}

# sanitizer_clean NAME: no ASan/UBSan/LSan report in the gateway's stderr.
sanitizer_clean() {
    ! grep -E 'AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer' \
        "$T_ROOT/$1.log" >/dev/null 2>&1
}

# api METHOD PORT PATH [BODY]: the response body on stdout.
api() {
    if [ $# -ge 4 ]; then
        curl -s -X "$1" -H 'Content-Type: application/json' --data-binary "$4" \
            "http://127.0.0.1:$2$3"
    else
        curl -s -X "$1" "http://127.0.0.1:$2$3"
    fi
}

# code_of JSON: the envelope's code (or "none").
code_of() { printf '%s' "$1" | jq -r '.code // "none"' 2>/dev/null || echo none; }

http_status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# ---- engine, provider and multi-node helpers (container and job tests) ----

# docker_up: a Docker engine (the machine's, or a private one under
# $DOCKER_STATE) with the demo provider image; sets DOCKER_URL.
docker_up() {
    DOCKER_URL=$(sh test/support/dockerd.sh ensure "$DOCKER_STATE") || return 1
    _src=$(cat deploy/providers/demo/bfia_demo.c deploy/providers/demo/components.json | sha256sum | cut -c1-16)
    if [ "$(docker -H "$DOCKER_URL" image inspect -f '{{index .Config.Labels "org.bfia.source"}}' bfia-demo:1.0.0 2>/dev/null)" != "$_src" ]; then
        sh deploy/providers/build.sh "$DOCKER_URL" >"$T_ROOT/image-build.log" 2>&1 || return 1
    fi
    export DOCKER_URL
}

# tokdir NODE CONTAINER_NAME: the container's attest directory on the host
# (<data_dir>/attest/<first 20 hex of SHA-256 of the name>, runner.c).
tokdir() { printf '%s/%s/data/attest/%s' "$T_ROOT" "$1" "$(printf '%s' "$2" | sha256sum | cut -c1-20)"; }

# node_start NAME NODE_ID PORT ROUTES [VAR=value ...]: a gateway on its own
# database NAME, talking to the engine, with a routes file.
node_start() {
    _nn=$1 _nid=$2 _np=$3 _nr=$4
    shift 4
    gw_start "$_nn" "$_np" "$_nn" GW_NODE_ID="$_nid" GW_DOCKER_HOST="$DOCKER_URL" \
        GW_ROUTES_FILE="$_nr" "$@"
}

# routes_file FILE NODE PORT [NODE PORT ...] [profile=...]
routes_file() {
    _f=$1
    shift
    : >"$_f"
    while [ $# -ge 2 ]; do
        printf '%s:\n  host: 127.0.0.1\n  port: %s\n  auth: off\n' "$1" "$2" >>"$_f"
        shift 2
    done
}

register_demo() { sh deploy/demo/provider.sh "http://127.0.0.1:$1"; }

upload() { # PORT NS NAME FILE
    curl -s -F "namespace=$2" -F "name=$3" -F "file=@$4" "http://127.0.0.1:$1/v2/component/upload/file"
}

# job_wait PORT JOB SECONDS: wait until the job is FINISHED/REJECTED; prints outcome.
job_wait() {
    _i=0
    while [ $_i -lt $(($3 * 5)) ]; do
        _s=$(api GET "$1" "/v1/platform/schedule/job/status_all?job_id=$2")
        _st=$(printf '%s' "$_s" | jq -r '.data.job_status // ""')
        if [ "$_st" = FINISHED ] || [ "$_st" = REJECTED ]; then
            printf '%s' "$_s" | jq -r '.data.outcome // ""'
            return 0
        fi
        sleep 0.2
        _i=$((_i + 1))
    done
    echo timeout
}

# job_json SYNC [jq filter]: the demo job with sync_type SYNC, edited by the filter.
job_json() {
    jq -c --arg s "$1" '.config.job_params.common.sync_type = $s | '"${2:-.}" deploy/demo/job.json
}

#!/bin/sh
# deploy/compose/testbed.sh - a multi-party testbed on this machine: every
# party is a compose project of its own (deploy/compose/party.yml: a gateway
# and its PostgreSQL, own volumes, own port), all on this machine's Docker
# engine, which also runs the parties' task containers.
#
#   testbed.sh up      (make testbed)  build what is missing (images, provider
#                      images), start the parties or reuse those already up,
#                      wait until every /readyz is 200, register the providers
#                      and upload the datasets on every party, run one job
#                      across them with progress and print its outcome per
#                      party, read from each party's own database.  Leaves
#                      the testbed running.  Exit 0 when the job succeeded.
#   testbed.sh job     run the job again on the running testbed
#   testbed.sh status  every party's containers and /readyz
#   testbed.sh down    (make testbed-down) remove the containers, volumes
#                      (and networks, if any) of every party, the task
#                      containers its gateways left, and var/testbed; the
#                      images stay for the next time
#
# The parties come from a small description, deploy/compose/parties.conf
# (NAME NODE_ID PORT per line); PARTIES=N takes its first N lines (2 or 3,
# default 2).  For each party this script writes var/testbed/<name>/:
#   .env              compose project name, compose file, DOCKER_HOST, node
#                     id, port, paths and the pinned image tags
#   route_table.yaml  the other parties (127.0.0.1:<port>) with their public
#                     keys pinned, so node-to-node calls are signed and checked
#   data/             the gateway's data_dir (keys/node-es256.pem, made here,
#                     datasets, task storage, attest dirs), bind-mounted at the
#                     same path, because the gateway hands those paths to the
#                     engine for its task containers
#
# Environment:
#   PARTIES               2 or 3 (default 2)
#   TESTBED_PARTIES_FILE  the description (default deploy/compose/parties.conf)
#   TESTBED_DIR           state directory (default var/testbed)
#   TESTBED_NAME          compose project prefix and label (default bfia-tb)
#   TESTBED_JOB           job kit: a name under deploy/compose/jobs/ or a path
#                         (default psi: ECDH-PSI between the first two parties,
#                         then col_stats on each intersection; demo: the demo
#                         provider's hash_ids and col_stats on every party)
#   TESTBED_JOB_FILTER    jq filter applied to the job before it is submitted
#   TESTBED_TIMEOUT       seconds the job may take (default 300)
#   TESTBED_DOCKER_STATE  where a private dockerd lives when no engine answers
#                         on /var/run/docker.sock (default var/demo/docker,
#                         shared with make providers and make demo)
#   TESTBED_LOG_LEVEL     the gateways' log level (default info)
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CMD=${1:-up}
N=${PARTIES:-2}
DESC=${TESTBED_PARTIES_FILE:-deploy/compose/parties.conf}
TB=${TESTBED_DIR:-var/testbed}
NAME=${TESTBED_NAME:-bfia-tb}
JOBKIT=${TESTBED_JOB:-psi}
TIMEOUT=${TESTBED_TIMEOUT:-300}
DSTATE=${TESTBED_DOCKER_STATE:-var/demo/docker}
CTL=build/bfiactl

mkdir -p "$TB"
TB=$(cd "$TB" && pwd)
case "$TB$ROOT" in *[!A-Za-z0-9_./-]*)
    echo "testbed: paths must be made of [A-Za-z0-9_./-] (they go into .env files): $TB" >&2
    exit 2
    ;;
esac
case "$NAME" in *[!a-z0-9-]* | "")
    echo "testbed: TESTBED_NAME must be lower-case letters, digits and '-'" >&2
    exit 2
    ;;
esac

now_ms() { date +%s%3N; }
T0=$(now_ms)
step() { printf '\n== %s  [%s s]\n' "$*" "$(secs "$T0" "$(now_ms)")"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
ping_sock() { curl -s -m 2 --unix-socket "$1" http://localhost/_ping 2>/dev/null | grep -q OK; }

# dc PARTY_DIR ARGS...: docker-compose in that party's project, with its
# .env exported (so a different DOCKER_HOST or COMPOSE_FILE in the caller's
# environment cannot redirect it).
dc() {
    (cd "$1" && shift && set -a && . ./.env && set +a && docker-compose "$@")
}

# cid PARTY_DIR SERVICE: the id of that party's running container of SERVICE
# (the docker CLI, not docker-compose: a Python start costs 0.5 s)
cid() {
    docker ps -q --filter "label=com.docker.compose.project=$(envval "$1" COMPOSE_PROJECT_NAME)" \
        --filter "label=com.docker.compose.service=$2" 2>/dev/null | head -n 1
}

# party_psql PARTY_DIR SQL: a query on that party's own database.
party_psql() {
    docker exec "$(cid "$1" postgres)" psql -X -q -t -A -U postgres -d bfia -c "$2"
}

# check_desc: the first N parties of the description, checked, into
# $TB/parties.new ("name node port" lines); exit 2 naming the fault.
check_desc() {
    bad() { echo "testbed: $DESC: $*" >&2; rm -f "$TB/parties.new"; exit 2; }
    case "$N" in *[!0-9]* | "" | 0 | 1) echo "testbed: PARTIES must be a number, 2 or more: '$N'" >&2; exit 2 ;; esac
    [ -f "$DESC" ] || { echo "testbed: no description file $DESC" >&2; exit 2; }
    grep -v '^[[:space:]]*#' "$DESC" | awk 'NF > 0' | head -n "$N" >"$TB/parties.new"
    [ "$(wc -l <"$TB/parties.new")" -eq "$N" ] || bad "fewer than $N parties (PARTIES=$N)"
    while read -r p node port extra; do
        [ -z "${extra:-}" ] || bad "party $p: expected NAME NODE_ID PORT, got more"
        case "$p" in *[!a-z0-9]* | "") bad "party name '$p': use 1 to 16 of [a-z0-9]" ;; esac
        [ ${#p} -le 16 ] || bad "party name '$p': use 1 to 16 of [a-z0-9]"
        case "$node" in *[!A-Za-z0-9_.-]* | "") bad "party $p: node id '$node': use 1 to 64 of [A-Za-z0-9_.-]" ;; esac
        [ ${#node} -le 64 ] || bad "party $p: node id '$node': use 1 to 64 of [A-Za-z0-9_.-]"
        case "${port:-}" in *[!0-9]* | "") bad "party $p: port '${port:-}' is not a number" ;; esac
        [ ${#port} -le 5 ] && [ "$port" -ge 1024 ] && [ "$port" -le 65535 ] ||
            bad "party $p: port $port is not in 1024..65535"
    done <"$TB/parties.new"
    for col in 1 2 3; do
        dup=$(awk -v c=$col '{ print $c }' "$TB/parties.new" | sort | uniq -d | head -n 1)
        [ -z "$dup" ] || bad "'$dup' is used by two parties (names, node ids and ports must differ)"
    done
    awk '{ print $1, $2, $3 }' "$TB/parties.new" >"$TB/parties.ok"
    mv "$TB/parties.ok" "$TB/parties.new"
}

# existing party directories (what down removes)
party_dirs() {
    for d in "$TB"/*/; do
        [ -f "$d.env" ] && printf '%s\n' "${d%/}"
    done
    return 0
}

envval() { sed -n "s/^$2=//p" "$1/.env"; }

gw_running() { [ -f "$1/.env" ] && [ -n "$(cid "$1" gateway)" ]; }

load_jobkit() {
    if [ -f "$JOBKIT" ]; then KIT=$JOBKIT; else KIT=deploy/compose/jobs/$JOBKIT.sh; fi
    [ -f "$KIT" ] || { echo "testbed: no job kit $JOBKIT ($KIT)" >&2; exit 2; }
    # shellcheck disable=SC1090
    . "./$KIT"
}

# ---- the engine ----------------------------------------------------------------
engine() {
    if [ -S /var/run/docker.sock ] && ping_sock /var/run/docker.sock; then
        DK=unix:///var/run/docker.sock
    else
        _was=no
        ping_sock "$DSTATE/docker.sock" 2>/dev/null && _was=yes
        DK=$(sh test/support/dockerd.sh ensure "$DSTATE")
        [ "$_was" = no ] && echo "$DSTATE" >"$TB/started-engine"
    fi
    export DOCKER_HOST="$DK"
    echo "$DK" >"$TB/engine"
}

# ---- generating the parties' files -----------------------------------------------
# gen: keys, .env and route tables for the selected parties.  A route table
# is rewritten in place (its bind mount follows the inode) and a running
# gateway is told to reload it (SIGHUP) when it changed.
gen() {
    mv "$TB/parties.new" "$TB/parties"
    while read -r p node port; do
        pd="$TB/$p"
        mkdir -p "$pd/data/keys"
        if [ ! -f "$pd/data/keys/node-es256.pem" ]; then
            (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                -out "$pd/data/keys/node-es256.pem" 2>/dev/null)
        fi
        "$CTL" key jwk "$pd/data/keys/node-es256.pem" >"$pd/jwk.json"
        cat >"$pd/.env.new" <<ENV
# written by deploy/compose/testbed.sh: party $p of testbed $NAME
COMPOSE_PROJECT_NAME=$NAME-$p
COMPOSE_FILE=$ROOT/deploy/compose/party.yml
DOCKER_HOST=$DK
TB_NAME=$NAME
TB_NODE_ID=$node
TB_PORT=$port
TB_PARTY_DIR=$pd
TB_DATA_DIR=$pd/data
TB_DOCKER_SOCK=${DK#unix://}
TB_LOG_LEVEL=${TESTBED_LOG_LEVEL:-info}
TB_GW_IMAGE=$GW_IMAGE
TB_PG_IMAGE=$PG_IMAGE
ENV
        mv "$pd/.env.new" "$pd/.env"
    done <"$TB/parties"
    while read -r p node port; do
        pd="$TB/$p"
        {
            printf '# route table of %s (party %s), written by deploy/compose/testbed.sh:\n' "$node" "$p"
            printf '# the other parties, each with its public key pinned (signed requests)\n'
            while read -r q qnode qport; do
                [ "$q" = "$p" ] && continue
                printf "%s:\n  host: 127.0.0.1\n  port: %s\n  auth: required\n  key: '%s'\n" \
                    "$qnode" "$qport" "$(jq -c . "$TB/$q/jwk.json")"
            done <"$TB/parties"
        } >"$pd/route_table.new"
        if [ -f "$pd/route_table.yaml" ] && cmp -s "$pd/route_table.new" "$pd/route_table.yaml"; then
            rm -f "$pd/route_table.new"
            continue
        fi
        [ -f "$pd/route_table.yaml" ] || : >"$pd/route_table.yaml"
        cat "$pd/route_table.new" >"$pd/route_table.yaml"
        rm -f "$pd/route_table.new"
        if gw_running "$pd"; then
            echo "$p: route table changed, reloading (SIGHUP)"
            dc "$pd" kill -s SIGHUP gateway >/dev/null 2>&1 || true
        fi
    done <"$TB/parties"
}

# ---- up ------------------------------------------------------------------------
wait_ready() { # PORT PARTY_DIR SECONDS
    _i=0
    while [ $_i -lt $(($3 * 5)) ]; do
        [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
        sleep 0.2
        _i=$((_i + 1))
    done
    echo "testbed: the gateway on port $1 did not become ready; its last log lines:" >&2
    dc "$2" logs --tail 30 gateway >&2 || true
    return 1
}

up() {
    check_desc
    step "Docker engine"
    engine
    echo "ok: $DK"
    command -v docker-compose >/dev/null || { echo "testbed: docker-compose missing (make deps)" >&2; exit 1; }

    step "Images (built offline from this machine's Debian packages)"
    eval "$(sh deploy/compose/images.sh "$DK")"
    echo "ok: $GW_IMAGE $PG_IMAGE"
    load_jobkit
    job_images "$DK"

    step "Parties ($N, from $DESC)"
    gen
    # a port must be free unless that party's own gateway holds it
    while read -r p node port; do
        if [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ] && ! gw_running "$TB/$p"; then
            echo "testbed: port $port (party $p) is in use; free it or change $DESC" >&2
            exit 1
        fi
    done <"$TB/parties"
    T1=$(now_ms)
    pids=""
    while read -r p node port; do
        (dc "$TB/$p" up -d --remove-orphans </dev/null >"$TB/$p/up.log" 2>&1 || { echo failed >>"$TB/$p/up.log"; exit 1; }) &
        pids="$pids $!"
    done <"$TB/parties"
    bad=0
    for pid in $pids; do wait "$pid" || bad=1; done
    while read -r p node port; do
        sed "s/^/$p: /" "$TB/$p/up.log" | grep -v '^[a-z0-9]*: *$' || true
    done <"$TB/parties"
    [ $bad = 0 ] || { echo "testbed: docker-compose up failed (see above)" >&2; exit 1; }
    while read -r p node port; do
        wait_ready "$port" "$TB/$p" 120
        echo "ok: $p $node ready on http://127.0.0.1:$port"
    done <"$TB/parties"
    T2=$(now_ms)
    echo "parties up and ready in $(secs "$T1" "$T2") s"
    run_job
}

# ---- the job -------------------------------------------------------------------
run_job() {
    load_jobkit
    first_port=$(awk 'NR == 1 { print $3 }' "$TB/parties")

    step "Providers and datasets on every party ($KIT)"
    i=0
    while read -r p node port; do
        job_prepare "http://127.0.0.1:$port" $i </dev/null
        echo "ok: $p $node"
        i=$((i + 1))
    done <"$TB/parties"

    step "Job across $(wc -l <"$TB/parties") parties, submitted to $(awk 'NR == 1 { print $1, $2 }' "$TB/parties")"
    # shellcheck disable=SC2046
    job_body $(awk '{ print $2 }' "$TB/parties") | jq -c "${TESTBED_JOB_FILTER:-.}" >"$TB/job.json"
    T3=$(now_ms)
    J=$("$CTL" --url "http://127.0.0.1:$first_port" job submit "$TB/job.json")
    case "$J" in *[!A-Za-z0-9_.-]* | "") echo "testbed: job submission failed: $J" >&2; exit 1 ;; esac
    echo "job id: $J"
    echo "$J" >"$TB/last-job"
    rc=0
    "$CTL" --url "http://127.0.0.1:$first_port" job status "$J" --wait --timeout "$TIMEOUT" || rc=$?
    T4=$(now_ms)

    step "Outcome per party (each from its own database)"
    i=0
    while read -r p node port; do
        pd="$TB/$p"
        echo "$p $node:"
        party_psql "$pd" "SELECT line FROM (
              SELECT 0 AS o, '  job ' || status || ', outcome ' || coalesce(outcome, '-')
                             || ' (as its scheduler)' AS line
                FROM t_schedule_job WHERE job_id = '$J'
              UNION ALL
              SELECT 1, '  job ' || status || ' as ' || role FROM t_job WHERE job_id = '$J'
              UNION ALL
              SELECT 2, '    ' || task_name || ' ' || role || '.' || role_index || ': ' || status
                        || ' (exit code ' || coalesce(exit_code::text, '-') || ')'
                FROM t_task WHERE job_id = '$J') x
            ORDER BY o, line" </dev/null
        echo "    $(job_report "$pd/data" "$J" "$node" $i)"
        i=$((i + 1))
    done <"$TB/parties"

    step "The testbed keeps running"
    while read -r p node port; do
        printf '  %s %s  http://127.0.0.1:%s   logs: (cd %s && docker-compose logs -f gateway)\n' \
            "$p" "$node" "$port" "${TB#"$ROOT"/}/$p"
    done <"$TB/parties"
    [ "$DK" = unix:///var/run/docker.sock ] || echo "  engine: $DK (export DOCKER_HOST=$DK for docker commands)"
    echo "  another job: $CTL --url http://127.0.0.1:$first_port job submit ${TB#"$ROOT"/}/job.json"
    echo "               $CTL --url http://127.0.0.1:$first_port job status JOB_ID --wait"
    echo "  metrics:     curl -s http://127.0.0.1:$first_port/metrics"
    echo "  stop:        make testbed-down"
    echo
    if [ $rc = 0 ]; then
        echo "testbed: job $J succeeded across $(wc -l <"$TB/parties") parties (start to job finished $(secs "$T0" "$T4") s, job $(secs "$T3" "$T4") s)"
    else
        echo "testbed: job $J did not succeed (bfiactl exit $rc)"
    fi
    return $rc
}

# ---- down ----------------------------------------------------------------------
down() {
    if [ -f "$TB/engine" ]; then
        DK=$(cat "$TB/engine")
    elif [ -S /var/run/docker.sock ] && ping_sock /var/run/docker.sock; then
        DK=unix:///var/run/docker.sock
    else
        DK=unix://$(cd "$DSTATE" 2>/dev/null && pwd)/docker.sock
    fi
    export DOCKER_HOST="$DK"
    if ! ping_sock "${DK#unix://}"; then
        if [ -n "$(party_dirs)" ]; then
            echo "testbed: the engine ($DK) does not answer; nothing can be removed from it" >&2
            exit 1
        fi
        echo "testbed: nothing to remove"
        return 0
    fi
    for pd in $(party_dirs); do
        p=$(basename "$pd")
        node=$(envval "$pd" TB_NODE_ID)
        echo "removing party $p ($node): $(envval "$pd" COMPOSE_PROJECT_NAME)"
        dc "$pd" down -v --remove-orphans --timeout 20 2>&1 | sed 's/^/  /'
        # task containers its gateway started and did not remove
        ids=$(docker ps -aq --filter "label=org.bfia.managed=true" --filter "label=org.bfia.node=$node")
        if [ -n "$ids" ]; then
            echo "  removing task containers: $(echo $ids)"
            # shellcheck disable=SC2086
            docker rm -f -v $ids >/dev/null
        fi
        rm -rf "$pd"
    done
    rm -f "$TB/parties" "$TB/engine" "$TB/job.json" "$TB/last-job"
    rm -rf "$TB/job-data" # what a job kit generated (jobs/psi.sh: the ID sets)
    if [ -f "$TB/started-engine" ]; then
        ds=$(cat "$TB/started-engine")
        busy=no
        for n in a b c; do
            [ -f var/demo/$n.pid ] && kill -0 "$(cat var/demo/$n.pid)" 2>/dev/null && busy=yes
        done
        if [ $busy = no ]; then
            echo "stopping the private dockerd the testbed started ($ds)"
            sh test/support/dockerd.sh stop "$ds"
        fi
        rm -f "$TB/started-engine"
    fi
    rmdir "$TB" 2>/dev/null || true
    echo "testbed removed"
}

status() {
    [ -n "$(party_dirs)" ] || { echo "no testbed in $TB"; return 1; }
    for pd in $(party_dirs); do
        port=$(envval "$pd" TB_PORT)
        echo "== $(basename "$pd") $(envval "$pd" TB_NODE_ID) http://127.0.0.1:$port readyz $(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/readyz")"
        dc "$pd" ps
    done
}

case "$CMD" in
up) up ;;
job)
    [ -f "$TB/parties" ] || { echo "testbed: not up (make testbed)" >&2; exit 1; }
    DK=$(cat "$TB/engine")
    export DOCKER_HOST="$DK"
    run_job
    ;;
status) status ;;
down) down ;;
*)
    echo "usage: testbed.sh up|job|status|down" >&2
    exit 2
    ;;
esac

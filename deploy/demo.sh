#!/bin/sh
# deploy/demo.sh - the main job, on the embedded default (make demo).
#
#   demo.sh [run]    start a private PostgreSQL (var/demo/pg) and, when no
#                    engine answers on /var/run/docker.sock, a private dockerd
#                    (var/demo/docker); build and import the demo provider
#                    image; start two gateway nodes on loopback, register
#                    the provider and upload a dataset on each; submit a
#                    two-party job with two dependent tasks from the first
#                    node; show its progress; print the outcome per party;
#                    stop everything it started.
#   demo.sh keep     the same, but leave the nodes running (demo.sh stop ends them)
#   demo.sh stop
#
# DEMO_THREE=1 adds a third node as a third-party scheduler.
# DEMO_SYNC=poll|callback chooses the status-sync mode (default callback).
set -eu
cd "$(dirname "$0")/.."
V=var/demo
A=JG0100001100000010 B=JG0100001100000020 C=JG0100001100000030
PA=18081 PB=18082 PC=18083
CTL=build/bfiactl
mode=${1:-run}

stop_all() {
    for n in a b c; do
        if [ -f $V/$n.pid ] && kill -0 "$(cat $V/$n.pid)" 2>/dev/null; then
            kill -TERM "$(cat $V/$n.pid)"
            i=0
            while kill -0 "$(cat $V/$n.pid)" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        fi
        rm -f $V/$n.pid
    done
    # a testbed (make testbed) may be running on the same private engine
    [ -f var/testbed/parties ] || sh test/support/dockerd.sh stop $V/docker >/dev/null 2>&1 || true
    [ -d $V/pg ] && sh test/support/pg.sh stop $V/pg >/dev/null 2>&1 || true
}

if [ "$mode" = stop ]; then
    stop_all
    echo "demo stopped"
    exit 0
fi

mkdir -p $V
step() { printf '\n== %s\n' "$*"; }

step "PostgreSQL (private cluster under $V/pg)"
sh test/support/pg.sh start $V/pg >/dev/null
for db in node_a node_b node_c; do sh test/support/pg.sh createdb $V/pg $db >/dev/null 2>&1 || true; done
echo "ok: $(sh test/support/pg.sh dsn $V/pg)"

step "Docker engine"
DK=$(sh test/support/dockerd.sh ensure $V/docker)
echo "ok: $DK"

step "Demo provider image (built offline, docker import)"
sh deploy/providers/build.sh "$DK"

step "Two gateway nodes on loopback"
R=$V/routes.yaml
{
    printf '# demo route table: FATE-Flow route_table.yaml format; between our\n'
    printf '# gateways every request is signed (auth: required, the default)\n'
    printf '%s:\n  host: 127.0.0.1\n  port: %s\n' $A $PA $B $PB
    [ -n "${DEMO_THREE:-}" ] && printf '%s:\n  host: 127.0.0.1\n  port: %s\n' $C $PC
} >$R
start_node() { # letter id port
    if [ -f $V/$1.pid ] && kill -0 "$(cat $V/$1.pid)" 2>/dev/null; then return; fi
    # the channel API for task containers (system.transport): port + 10
    GW_NODE_ID=$2 GW_HTTP_PORT=$3 GW_HTTP_HOST=127.0.0.1 GW_TRANSPORT_PORT=$(($3 + 10)) \
        GW_DB_DSN="host=$(pwd)/$V/pg/run dbname=node_$1 user=postgres" \
        GW_DOCKER_HOST="$DK" GW_ROUTES_FILE=$R GW_DATA_DIR=$V/node_$1 \
        nohup build/gateway -c conf/gateway.example.yaml >>$V/node_$1.log 2>&1 </dev/null &
    echo $! >$V/$1.pid
}
start_node a $A $PA
start_node b $B $PB
[ -n "${DEMO_THREE:-}" ] && start_node c $C $PC
for p in $PA $PB ${DEMO_THREE:+$PC}; do
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$p/readyz)" = 200 ]; do
        i=$((i + 1))
        if [ $i -gt 300 ]; then
            echo "node on port $p did not become ready; see $V/node_*.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "ok: node $(curl -s http://127.0.0.1:$p/version | jq -r .data.node_id) on 127.0.0.1:$p"
done

step "Register the provider on every node"
for p in $PA $PB ${DEMO_THREE:+$PC}; do
    r=$(sh deploy/demo/provider.sh http://127.0.0.1:$p)
    echo "127.0.0.1:$p: $(printf '%s' "$r" | jq -r '.msg + " " + (.data.image_digest // "")')"
    [ "$(printf '%s' "$r" | jq -r .code)" = 0 ] || { echo "$r" >&2; exit 1; }
done

step "Upload the demo datasets"
$CTL --url http://127.0.0.1:$PA dataset upload deploy/demo/data/guest.csv demo guest
$CTL --url http://127.0.0.1:$PB dataset upload deploy/demo/data/host.csv demo host

step "Submit the job from node $A (guest) with node $B as host"
JOB=$V/job.json
filter=".config.job_params.common.sync_type = \"${DEMO_SYNC:-callback}\""
# the third task: both parties exchange their statistics through the
# transport layer (the channel API), so data crosses nodes
filter="$filter | .dag.components += [{\"name\": \"joint_stats_0\", \"componentName\": \"joint_stats\",
  \"provider\": \"bfia-demo\", \"version\": \"1.0.0\", \"input\": [{\"type\": \"report\",
  \"key\": \"col_stats_0.report\"}], \"output\": [{\"type\": \"report\", \"key\": \"joint\"}]}]"
[ -n "${DEMO_THREE:-}" ] && filter="$filter | .config.job_params.common.scheduler = \"$C\""
jq "$filter" deploy/demo/job.json >$JOB
J=$($CTL --url http://127.0.0.1:$PA job submit $JOB)
echo "job id: $J"
SP=$PA
[ -n "${DEMO_THREE:-}" ] && SP=$PC

step "Progress (as seen by the scheduler)"
rc=0
$CTL --url http://127.0.0.1:$SP job status "$J" --wait --timeout 300 || rc=$?

step "Outcome per party"
for p in $PA $PB; do
    $CTL --url http://127.0.0.1:$p --json job status "$J" |
        jq -r '.data | "node \(.tasks[0].node_id // "?"): job \(.job_status)" , (.tasks[] | "  \(.task_name) \(.roles|join(",")): \(.status) (exit code \(.exit_code // "-"))")'
done
echo
echo "guest report: $(cat $V/node_a/storage/$J/col_stats_0.report.guest.0/data 2>/dev/null | head -c 400)"
echo
echo "joint report (each party's statistics crossed nodes through the transport layer):"
for n in a b; do
    f=$(ls $V/node_$n/storage/$J/joint_stats_0.*/data 2>/dev/null | head -n 1)
    echo "  node_$n: $(head -c 600 "$f" 2>/dev/null)"
done

if [ "$mode" = keep ]; then
    echo
    echo "nodes keep running: http://127.0.0.1:$PA and http://127.0.0.1:$PB; stop with: sh deploy/demo.sh stop"
else
    step "Stopping what the demo started"
    stop_all
fi
[ $rc -eq 0 ] && echo "demo: job $J succeeded" || echo "demo: job $J did not succeed (exit $rc)"
exit $rc

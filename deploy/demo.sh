#!/bin/sh
# deploy/demo.sh - the main job, on the embedded default (make demo).
#
#   demo.sh [run]    start a private PostgreSQL (var/demo/pg) and, when no
#                    engine answers on /var/run/docker.sock, a private dockerd
#                    (var/demo/docker); build and import the provider images
#                    (the demo's and the ECDH-PSI component's) unless they are
#                    current; start two gateway nodes on loopback, register
#                    both providers and upload an ID set on each (generated:
#                    deploy/demo/psi_data.sh, a known overlap); submit a
#                    two-party job from the first node: a private set
#                    intersection (ecdh_psi), statistics of each party's
#                    intersection (col_stats, reading the PSI output) and
#                    their exchange through the transport (joint_stats); show
#                    its progress; print the outcome and the rows matched per
#                    party; stop everything it started.
#   demo.sh keep     the same, but leave the nodes running (demo.sh stop ends them)
#   demo.sh stop
#
# DEMO_THREE=1 adds a third node as a third-party scheduler.
# DEMO_SYNC=poll|callback chooses the status-sync mode (default callback).
# DEMO_IDS="N_GUEST N_HOST N_SHARED" sizes the ID sets (default 3000 2500 1200).
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

step "Provider images (built offline: no registry)"
# image_current TAG SOURCES...: the image's org.bfia.source label matches the sources
image_current() {
    _t=$1
    shift
    [ "$(docker -H "$DK" image inspect -f '{{index .Config.Labels "org.bfia.source"}}' "$_t" 2>/dev/null)" = \
        "$(cat "$@" | sha256sum | cut -c1-16)" ]
}
if image_current bfia-demo:1.0.0 deploy/providers/demo/bfia_demo.c deploy/providers/demo/components.json; then
    echo "bfia-demo:1.0.0 is current"
else
    sh deploy/providers/build.sh "$DK"
fi
if image_current bfia-ecdh-psi:1.0.0 deploy/providers/psi/*.c deploy/providers/psi/*.h \
    deploy/providers/psi/proto/*.proto deploy/providers/psi/provider.json; then
    echo "bfia-ecdh-psi:1.0.0 is current"
else
    echo "bfia-ecdh-psi:1.0.0 $(sh deploy/providers/psi/build.sh "$DK")"
fi

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

step "Register the providers on every node (bfia-demo, bfia-psi)"
for p in $PA $PB ${DEMO_THREE:+$PC}; do
    for prov in demo psi; do
        if [ $prov = demo ]; then
            r=$(sh deploy/demo/provider.sh http://127.0.0.1:$p)
        else
            r=$($CTL --url http://127.0.0.1:$p --json provider register deploy/providers/psi/provider.json)
        fi
        echo "127.0.0.1:$p $prov: $(printf '%s' "$r" | jq -r '.msg + " " + (.data.image_digest // "")')"
        [ "$(printf '%s' "$r" | jq -r .code)" = 0 ] || { echo "$r" >&2; exit 1; }
    done
done

# shellcheck disable=SC2086
set -- ${DEMO_IDS:-3000 2500 1200}
NG=$1 NH=$2 NS=$3
step "Generate and upload the ID sets: guest $NG, host $NH, $NS shared (deploy/demo/psi_data.sh)"
sh deploy/demo/psi_data.sh $V/psi "$NG" "$NH" "$NS"
$CTL --url http://127.0.0.1:$PA dataset upload $V/psi/psi_guest.csv demo psi_guest
$CTL --url http://127.0.0.1:$PB dataset upload $V/psi/psi_host.csv demo psi_host

step "Submit the job from node $A (guest) with node $B as host"
JOB=$V/job.json
filter=".config.job_params.common.sync_type = \"${DEMO_SYNC:-callback}\""
# the third task: both parties exchange the statistics of their
# intersection through the transport layer (the channel API)
filter="$filter | .dag.components += [{\"name\": \"joint_stats_0\", \"componentName\": \"joint_stats\",
  \"provider\": \"bfia-demo\", \"version\": \"1.0.0\", \"input\": [{\"type\": \"report\",
  \"key\": \"col_stats_0.report\"}], \"output\": [{\"type\": \"report\", \"key\": \"joint\"}]}]"
[ -n "${DEMO_THREE:-}" ] && filter="$filter | .config.job_params.common.scheduler = \"$C\""
jq "$filter" deploy/demo/psi_job.json >$JOB
echo "tasks: $(jq -r '[.dag.components[] | .name + " (" + .componentName + ")"] | join(" -> ")' $JOB)"
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

step "Rows matched per party (known overlap: $NS)"
for side in a:guest:$NG:$PA b:host:$NH:$PB; do
    n=${side%%:*} rest=${side#*:}
    role=${rest%%:*} rest=${rest#*:}
    total=${rest%%:*} port=${rest#*:}
    st=$V/node_$n/storage/$J
    rep=$(cat $st/psi_0.report.$role.0/data 2>/dev/null || echo '{}')
    rows=$(jq -r '.rows // "?"' $st/col_stats_0.report.$role.0/data 2>/dev/null || echo '?')
    ds=$($CTL --url http://127.0.0.1:$port --json dataset list "$J" 2>/dev/null |
        jq -r '[.data.datasets[]? | .dataset_id] | join(", ")' 2>/dev/null)
    printf '  %-5s node_%s: %s of %s ids matched (psi report %s); col_stats read %s rows of the intersection\n' \
        "$role" "$n" "$(printf '%s' "$rep" | jq -r '.intersection_count // "?"')" "$total" \
        "$(printf '%s' "$rep" | jq -c .)" "$rows"
    if [ -n "$ds" ]; then printf '         intersection registered as dataset %s\n' "$ds"; fi
done
echo
echo "joint report (each party's statistics of its intersection, exchanged through the transport layer):"
for n in a b; do
    f=$(ls $V/node_$n/storage/$J/joint_stats_0.*/data 2>/dev/null | head -n 1)
    echo "  node_$n: $(head -c 400 "$f" 2>/dev/null)"
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

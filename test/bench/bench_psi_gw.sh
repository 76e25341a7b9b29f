#!/bin/sh
# test/bench/bench_psi_gw.sh - ECDH-PSI end to end through two gateways
# (issue 15): 1,000,000 x 1,000,000 and 100,000 x 100,000 IDs, 50 % shared,
# the component in real task containers on two gateway nodes (optimised
# build, signed node-to-node requests, the transport layer, dialect B), all
# on this machine's cores; each run next to its bound measured in the same
# run: the time OpenSSL needs on all cores for the 2 x (N_GUEST + N_HOST)
# X25519 multiplications the two parties must do (build/tools/psi_bench
# --bound, before and after the run; their mean is the bound).
#   * end to end: job submitted to job FINISHED at the scheduler, and each
#     party's container from start to exit (t_task); target <= 1.3 x bound
#   * peak memory per party: the container's memory cgroup high-water mark
#     (v1 memory.max_usage_in_bytes, v2 memory.peak; it includes the page
#     cache of the files the party writes), and the largest anonymous
#     (rss) figure sampled every 0.2 s; target <= 256 MB
#   * CPU time of both containers (cgroup cpuacct / cpu.stat) next to the
#     CPU time the bound's rate needs (load on a shared machine changes the
#     wall-clock bound; this ratio much less)
#   * the intersection checked against the known overlap
# PSI_GW_SIZES="NG NH ..." changes the sizes.  Prints figures; asserts nothing.
set -eu
cd "$(dirname "$0")/../.."
B=$(mktemp -d /tmp/bfia-bpsi.XXXXXX)
chmod 755 "$B"
# node ids and ports of this bench alone (a gateway's reconcile removes the
# containers of its node id that its database does not know)
A=JG0100001100000560 H=JG0100001100000570 PA=18691 PH=18692
BOUND=build/tools/psi_bench
cleanup() {
    for n in a h; do [ -f "$B/$n.pid" ] && kill -TERM "$(cat "$B/$n.pid")" 2>/dev/null; done
    sleep 1
    [ -n "${DK:-}" ] && docker -H "$DK" ps -aq --filter label=org.bfia.node=$A --filter label=org.bfia.managed=true |
        xargs -r docker -H "$DK" rm -f >/dev/null 2>&1
    [ -n "${DK:-}" ] && docker -H "$DK" ps -aq --filter label=org.bfia.node=$H --filter label=org.bfia.managed=true |
        xargs -r docker -H "$DK" rm -f >/dev/null 2>&1
    sh test/support/pg.sh stop "$B/pg" >/dev/null 2>&1 || true
    sh test/support/dockerd.sh stop "$B/dk" >/dev/null 2>&1 || true
    rm -rf "$B"
}
trap cleanup EXIT INT TERM
echo "== ECDH-PSI through two gateways (real containers, signed relay), next to the X25519 bound"
[ -x "$BOUND" ] || make -s "$BOUND"
DK=$(sh test/support/dockerd.sh ensure "$B/dk" 2>/dev/null) || { echo "no Docker engine: PSI gateway figures skipped"; exit 0; }
# the image under a tag named after its sources (as t_psi): never re-tagged
SRC=$(cat deploy/providers/psi/*.c deploy/providers/psi/*.h deploy/providers/psi/proto/*.proto \
    deploy/providers/psi/provider.json | sha256sum | cut -c1-16)
IMG="bfia-ecdh-psi:t-$SRC"
docker -H "$DK" image inspect "$IMG" >/dev/null 2>&1 || sh deploy/providers/psi/build.sh "$DK" "$IMG" >/dev/null
sh test/support/pg.sh start "$B/pg" >/dev/null
for db in na nh; do sh test/support/pg.sh createdb "$B/pg" $db >/dev/null; done
printf '%s:\n  host: 127.0.0.1\n  port: %s\n' $A $PA $H $PH >"$B/routes.yaml"
start() { # letter id port
    GW_NODE_ID=$2 GW_HTTP_PORT=$3 GW_DB_DSN="host=$B/pg/run dbname=n$1 user=postgres" \
        GW_DOCKER_HOST="$DK" GW_ROUTES_FILE="$B/routes.yaml" GW_DATA_DIR="$B/$1" GW_LOG_LEVEL=warn \
        GW_SCHED_POLL_MS=200 build/gateway -c conf/test.yaml 2>"$B/$1.log" &
    echo $! >"$B/$1.pid"
}
start a $A $PA
start h $H $PH
PROV=$(jq -c --arg i "$IMG" '.metadata.image = $i' deploy/providers/psi/provider.json)
for p in $PA $PH; do
    for i in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/readyz")" = 200 ] && break
        sleep 0.1
    done
    curl -s -H 'Content-Type: application/json' --data-binary "$PROV" "http://127.0.0.1:$p/v2/provider/register" |
        jq -e '.code == 0' >/dev/null || { echo "PSI gateway bench: provider not registered"; exit 0; }
done
q() { psql -X -q -t -A -h "$B/pg/run" -U postgres -d "$1" -c "$2"; }

# cg_mem CONTAINER_ID: "peak rss" in bytes from its memory cgroup (v1 or v2), or nothing
cg_mem() {
    for d in /sys/fs/cgroup/memory/docker/$1 /sys/fs/cgroup/memory/system.slice/docker-$1.scope; do
        if [ -r "$d/memory.max_usage_in_bytes" ]; then
            echo "$(cat "$d/memory.max_usage_in_bytes") $(awk '$1 == "total_rss" || $1 == "rss" {print $2; exit}' "$d/memory.stat")"
            return
        fi
    done
    for d in /sys/fs/cgroup/docker/$1 /sys/fs/cgroup/system.slice/docker-$1.scope; do
        if [ -r "$d/memory.peak" ]; then
            echo "$(cat "$d/memory.peak") $(awk '$1 == "anon" {print $2; exit}' "$d/memory.stat")"
            return
        fi
    done
}
# cg_cpu CONTAINER_ID: CPU nanoseconds used so far (v1 or v2), or nothing
cg_cpu() {
    for d in /sys/fs/cgroup/cpuacct/docker/$1 /sys/fs/cgroup/cpuacct/system.slice/docker-$1.scope; do
        [ -r "$d/cpuacct.usage" ] && { cat "$d/cpuacct.usage"; return; }
    done
    for d in /sys/fs/cgroup/docker/$1 /sys/fs/cgroup/system.slice/docker-$1.scope; do
        [ -r "$d/cpu.stat" ] && { awk '$1 == "usage_usec" {print $2 * 1000; exit}' "$d/cpu.stat"; return; }
    done
}
mb() { awk -v b="${1:-0}" 'BEGIN { printf "%.0f", b / 1048576 }'; }

# run NG NH: one job of one ecdh_psi task, A guest with NG ids, H host with NH ids
run() {
    ng=$1 nh=$2 ns=$(($1 < $2 ? $1 / 2 : $2 / 2))
    d="$B/data-$ng-$nh"
    sh deploy/demo/psi_data.sh "$d" "$ng" "$nh" "$ns"
    build/bfiactl --url "http://127.0.0.1:$PA" dataset upload "$d/psi_guest.csv" bench "g$ng" >/dev/null
    build/bfiactl --url "http://127.0.0.1:$PH" dataset upload "$d/psi_host.csv" bench "h$nh" >/dev/null
    rm -rf "$d"
    b0=$("$BOUND" --bound "$ng" "$nh")
    body=$(jq -c --arg a $A --arg h $H --arg g "bench#g$ng" --arg o "bench#h$nh" '
      .config.initiator.node_id = $a | .config.role = {guest: [$a], host: [$h]}
      | .dag.components = [.dag.components[0]]
      | .config.job_params.guest["0"].resources = {cpu: -1, memory: -1}
      | .config.job_params.host["0"].resources = {cpu: -1, memory: -1}
      | .config.task_params.guest["0"].psi_0.dataset_id = $g
      | .config.task_params.host["0"].psi_0.dataset_id = $o' deploy/demo/psi_job.json)
    t0=$(date +%s%N)
    J=$(curl -s -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$PA/v1/platform/schedule/job/create_all" | jq -r '.data.job_id // ""')
    [ -n "$J" ] || { echo "  $ng x $nh: job not created"; return; }
    pa=0 ra=0 ph=0 rh=0 ca=0 ch=0 st=""
    while :; do
        for side in a:$A h:$H; do
            cidv=$(docker -H "$DK" ps -q --no-trunc --filter "label=org.bfia.job=$J" --filter "label=org.bfia.node=${side#*:}" | head -n 1)
            [ -n "$cidv" ] || continue
            set -- $(cg_mem "$cidv") 0 0
            c=$(cg_cpu "$cidv")
            c=${c:-0}
            if [ "${side%%:*}" = a ]; then
                [ "$1" -gt "$pa" ] && pa=$1
                [ "$2" -gt "$ra" ] && ra=$2
                [ "$c" -gt "$ca" ] && ca=$c
            else
                [ "$1" -gt "$ph" ] && ph=$1
                [ "$2" -gt "$rh" ] && rh=$2
                [ "$c" -gt "$ch" ] && ch=$c
            fi
        done
        st=$(q na "SELECT status || ' ' || coalesce(outcome, '') FROM t_schedule_job WHERE job_id = '$J'")
        case "$st" in FINISHED*) break ;; esac
        sleep 0.2
    done
    t1=$(date +%s%N)
    b1=$("$BOUND" --bound "$ng" "$nh")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    bound=$(printf '%s\n%s\n' "$b0" "$b1" | awk '{ s += $2 } END { printf "%.1f", s / NR }')
    cont() { q "$1" "SELECT round(extract(epoch FROM end_time - start_time)::numeric, 1) FROM t_task WHERE job_id = '$J'"; }
    rep() { tr -d '\n' <"$B/$1/storage/$J/psi_0.report.$2.0/data" 2>/dev/null || echo none; }
    echo "  $ng x $nh ids ($ns shared): job ${st% }"
    echo "    bound (X25519 on all cores, measured before / after): $(echo "$b0" | cut -d' ' -f2) s / $(echo "$b1" | cut -d' ' -f2) s -> $bound s"
    echo "      $(echo "$b0" | cut -d: -f2-)"
    echo "    end to end (submit to FINISHED): $wall s = $(awk -v w="$wall" -v b="$bound" 'BEGIN { printf "%.2f", w / b }') x bound (target <= 1.3)"
    echo "    containers start to exit: guest $(cont na) s, host $(cont nh) s"
    # the bound in CPU seconds: the multiplications at the rate per CPU second
    cpub=$(printf '%s\n%s\n' "$b0" "$b1" | sed 's/.* multiplications at [0-9]*\/s on [0-9]* cores (\([0-9]*\)\/s per CPU second).*/\1/' |
        awk -v m="$((2 * (ng + nh)))" '{ s += $1 } END { printf "%.1f", m / (s / NR) }')
    echo "    CPU time (sampled every 0.2 s): guest $(awk -v c="$ca" 'BEGIN { printf "%.1f", c / 1e9 }') s + host $(awk -v c="$ch" 'BEGIN { printf "%.1f", c / 1e9 }') s = $(awk -v a="$ca" -v h="$ch" -v b="$cpub" 'BEGIN { printf "%.1f s = %.2f x", (a + h) / 1e9, (a + h) / 1e9 / b }') the $cpub CPU s the multiplications take"
    echo "    peak memory, cgroup high-water mark incl. page cache / largest rss sampled: guest $(mb $pa) / $(mb $ra) MB, host $(mb $ph) / $(mb $rh) MB (target <= 256)"
    echo "    reports: guest $(rep a guest), host $(rep h host) (expected intersection_count $ns)"
}
# shellcheck disable=SC2086
set -- ${PSI_GW_SIZES:-1000000 1000000 100000 100000}
while [ $# -ge 2 ]; do
    run "$1" "$2"
    shift 2
done
exit 0

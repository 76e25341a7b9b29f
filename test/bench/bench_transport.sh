#!/bin/sh
# test/bench/bench_transport.sh - the transport layer, container to container
# across two gateway nodes (optimised build, signed node-to-node requests),
# each figure next to its baseline measured in the same run: plain HTTP POSTs
# of the same payload to a bare libevent sink (test/support/chansink.c).
#   * 1 MiB messages, one session: container -> gateway A -> gateway B ->
#     container, producer and consumer running at once; MiB/s.
#     Target: >= 1/3 of the single-hop baseline.
#   * 1 KiB messages over 16 sessions at once (16 tasks of one job, each its
#     own task-scoped session); messages/s.  Target >= 10,000.
#   * push-to-pop latency of small messages (p50, p99).  Target p50 <= 1 ms.
#   * gateway RSS against the configured queue bounds (+32 MB).
# The "containers" are test/support/chantool using the tokens of real,
# sleeping task containers; its bench commands (and the baseline's POSTs) use
# a lean keep-alive HTTP/1.1 client (CHANTOOL_CURL=1: libcurl, as before).
# BENCH_GATEWAY=path runs another gateway binary (the figure before a change).
# Prints figures; asserts nothing.
set -eu
cd "$(dirname "$0")/../.."
B=$(mktemp -d /tmp/bfia-bt.XXXXXX)
chmod 755 "$B"
A=JG0100001100072010 H=JG0100001100072020 PA=18681 PH=18682 TA=18683 PS=18684
N1M=${BENCH_MIB_MESSAGES:-300}
NK=${BENCH_KIB_MESSAGES:-2000}
TOOL=build/tools/chantool
cleanup() {
    [ -n "${JOB:-}" ] && curl -s -H 'Content-Type: application/json' -d "{\"job_id\":\"$JOB\"}" \
        "http://127.0.0.1:$PA/v1/platform/schedule/job/stop_all" >/dev/null 2>&1 && sleep 2
    for n in a h s; do [ -f "$B/$n.pid" ] && kill -TERM "$(cat "$B/$n.pid")" 2>/dev/null; done
    sleep 0.5
    sh test/support/pg.sh stop "$B/pg" >/dev/null 2>&1 || true
    sh test/support/dockerd.sh stop "$B/dk" >/dev/null 2>&1 || true
    rm -rf "$B"
}
trap cleanup EXIT INT TERM
DK=$(sh test/support/dockerd.sh ensure "$B/dk" 2>/dev/null) || { echo "no Docker engine: transport figures skipped"; exit 0; }
SRC=$(cat deploy/providers/demo/bfia_demo.c deploy/providers/demo/components.json | sha256sum | cut -c1-16)
[ "$(docker -H "$DK" image inspect -f '{{index .Config.Labels "org.bfia.source"}}' bfia-demo:1.0.0 2>/dev/null)" = "$SRC" ] ||
    sh deploy/providers/build.sh "$DK" >/dev/null
sh test/support/pg.sh start "$B/pg" >/dev/null
for db in na nh; do sh test/support/pg.sh createdb "$B/pg" $db >/dev/null; done
# signed between the nodes (no auth: off), as in production
printf '%s:\n  host: 127.0.0.1\n  port: %s\n' $A $PA $H $PH >"$B/routes.yaml"
start() { # letter id port transport-port
    GW_NODE_ID=$2 GW_HTTP_PORT=$3 GW_TRANSPORT_PORT=$4 GW_DB_DSN="host=$B/pg/run dbname=n$1 user=postgres" \
        GW_DOCKER_HOST="$DK" GW_ROUTES_FILE="$B/routes.yaml" GW_DATA_DIR="$B/$1" GW_LOG_LEVEL=warn \
        "${BENCH_GATEWAY:-build/gateway}" -c conf/test.yaml 2>"$B/$1.log" &
    echo $! >"$B/$1.pid"
}
start a $A $PA $TA
start h $H $PH 0
build/tools/chansink $PS &
echo $! >"$B/s.pid"
for p in $PA $PH; do
    for i in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/readyz")" = 200 ] && break
        sleep 0.1
    done
    sh deploy/demo/provider.sh "http://127.0.0.1:$p" >/dev/null
done
build/bfiactl --url "http://127.0.0.1:$PA" dataset upload deploy/demo/data/guest.csv demo guest >/dev/null
build/bfiactl --url "http://127.0.0.1:$PH" dataset upload deploy/demo/data/host.csv demo host >/dev/null
# 16 root tasks that sleep: 16 task-scoped sessions per side
body=$(jq -c --arg a $A --arg h $H '
  .config.initiator.node_id = $a | .config.role.guest = [$a] | .config.role.host = [$h]
  | .config.job_params.common.sync_type = "poll"
  | .dag.components = [range(16) as $i | .dag.components[0] | .name = "hash_ids_\($i)"]
  | .config.task_params.common = ([range(16) as $i | {key: "hash_ids_\($i)", value: {sleep_ms: 900000}}] | from_entries)
  | .config.task_params.guest["0"] = ([range(16) as $i | {key: "hash_ids_\($i)", value: {dataset_id: "demo#guest"}}] | from_entries)
  | .config.task_params.host["0"] = ([range(16) as $i | {key: "hash_ids_\($i)", value: {dataset_id: "demo#host"}}] | from_entries)
  | .config.job_params.guest["0"].resources = {cpu: -1, memory_mb: 64}
  | .config.job_params.host["0"].resources = {cpu: -1, memory_mb: 64}' deploy/demo/job.json)
JOB=$(curl -s -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$PA/v1/platform/schedule/job/create_all" | jq -r '.data.job_id // ""')
[ -n "$JOB" ] || { echo "transport bench: job not created"; exit 0; }
q() { psql -X -q -t -A -h "$B/pg/run" -U postgres -d "$1" -c "$2"; }
for i in $(seq 600); do
    [ "$(q na "SELECT count(*) FROM t_task WHERE job_id='$JOB' AND status='RUNNING'")" = 16 ] &&
        [ "$(q nh "SELECT count(*) FROM t_task WHERE job_id='$JOB' AND status='RUNNING'")" = 16 ] && break
    sleep 0.2
done
tok() { # db task role
    docker -H "$DK" inspect "$(q "$1" "SELECT container_name FROM t_task WHERE job_id='$JOB' AND task_name='$2'")" \
        --format '{{json .Config.Env}}' | jq -r '.[] | select(startswith("config.token=")) | sub("config.token="; "")'
}
S="session_$JOB" UA="http://127.0.0.1:$TA" UH="http://127.0.0.1:$PH"
G0=$(tok na hash_ids_0) H0=$(tok nh hash_ids_0)
[ -n "$G0" ] && [ -n "$H0" ] || { echo "transport bench: task tokens not found"; exit 0; }
rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

echo "== transport (container -> gateway A -> gateway B -> container, signed, $(nproc) cores)"
MIB=$((1024 * 1024))
# After a warm-up, five rounds, each a baseline run then a gateway run of
# N/5 messages, so both see the same machine (a 2-core box drifts by +-20 %
# over a minute); the figures are the medians of the rounds, the ratio the
# median of the rounds' ratios.
R=5 NR=$(((N1M + 4) / 5))
: >"$B/r1"
# warm-up, not measured: connections, buffers, the receiver's body key
$TOOL post "http://127.0.0.1:$PS/" 10 $MIB >/dev/null
$TOOL benchpop "$UH" "$H0" "$S" $A big 10 >/dev/null &
cp=$!
$TOOL benchpush "$UA" "$G0" "$S" $H big 10 $MIB >/dev/null
wait $cp
for r in $(seq $R); do
    # baseline: one plain POST after another of 1 MiB to the bare sink
    tb=$($TOOL post "http://127.0.0.1:$PS/" "$NR" $MIB)
    # the gateway path, producer and consumer at once
    $TOOL benchpop "$UH" "$H0" "$S" $A big "$NR" >"$B/pop1" &
    cp=$!
    tp=$($TOOL benchpush "$UA" "$G0" "$S" $H big "$NR" $MIB)
    wait $cp
    te=$(cut -d' ' -f1 "$B/pop1")
    [ "$(awk -v a="$tp" -v b="$te" 'BEGIN {print (a > b)}')" = 1 ] && te=$tp
    echo "$(rate "$NR" "$te") $(rate "$NR" "$tb")" >>"$B/r1"
done
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
e2e1=$(cut -d' ' -f1 "$B/r1" | med)
base1=$(cut -d' ' -f2 "$B/r1" | med)
ratio1=$(awk '{printf "%.3f\n", $1 / $2}' "$B/r1" | med)
printf '%-46s %9s MiB/s   baseline (one POST to a bare sink) %9s MiB/s   ratio %s (target >= 0.33; rounds %s)\n' \
    "1 MiB messages, end to end" "$e2e1" "$base1" "$ratio1" \
    "$(awk '{printf "%s%.2f", (NR > 1 ? " " : ""), $1 / $2}' "$B/r1")"

# 16 sessions at once, 1 KiB
t0=$(date +%s.%N)
pids=""
for i in $(seq 0 15); do
    $TOOL post "http://127.0.0.1:$PS/" "$NK" 1024 >"$B/bp$i" &
    pids="$pids $!"
done
wait $pids
t1=$(date +%s.%N)
basek=$(awk -v n=$((16 * NK)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
for i in $(seq 0 15); do
    eval "G$i=\$(tok na hash_ids_$i)"
    eval "H$i=\$(tok nh hash_ids_$i)"
done
pids=""
t0=$(date +%s.%N)
for i in $(seq 0 15); do
    eval "g=\$G$i h=\$H$i"
    $TOOL benchpop "$UH" "$h" "$S" $A small "$NK" >"$B/pk$i" &
    pids="$pids $!"
    $TOOL benchpush "$UA" "$g" "$S" $H small "$NK" 1024 >"$B/sk$i" &
    pids="$pids $!"
done
wait $pids
t1=$(date +%s.%N)
e2ek=$(awk -v n=$((16 * NK)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
errs=$(cat "$B"/pk* "$B"/sk* | grep -c error || true)
p50=$(cat "$B"/pk* | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf '%-46s %9s msg/s   baseline (16 clients POSTing to the sink) %9s req/s   (target >= 10000; %s errors)\n' \
    "1 KiB messages, 16 sessions at once, end to end" "$e2ek" "$basek" "$errs"
# the same on one node (both parties' containers at A: no relay, no signature)
pids=""
t0=$(date +%s.%N)
for i in $(seq 0 15); do
    eval "g=\$G$i"
    $TOOL benchpop "$UA" "$g" "$S" - local "$NK" >"$B/lk$i" &
    pids="$pids $!"
    $TOOL benchpush "$UA" "$g" "$S" $A local "$NK" 1024 >"$B/lsk$i" &
    pids="$pids $!"
done
wait $pids
t1=$(date +%s.%N)
loc=$(awk -v n=$((16 * NK)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
printf '%-46s %9s msg/s   (%s errors)\n' "1 KiB messages, 16 sessions, on one node" "$loc" \
    "$(cat "$B"/lk* "$B"/lsk* | grep -c error || true)"
# latency: one small message at a time
$TOOL benchpop "$UH" "$H0" "$S" $A lat 1000 >"$B/lat" &
cp=$!
$TOOL benchpush "$UA" "$G0" "$S" $H lat 1000 64 >/dev/null
wait $cp
printf '%-46s p50 %s us, p99 %s us (one at a time; under the 16-session load: median of per-session p50s %s us) (target p50 <= 1000 us)\n' \
    "push-to-pop latency, 64 B, across nodes" "$(cut -d' ' -f2 "$B/lat")" "$(cut -d' ' -f3 "$B/lat")" "$p50"
rssa=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$B/a.pid")/status")
rssh=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$B/h.pid")/status")
printf '%-46s %s requests for %s messages\n' "relay requests (batches) A -> B" \
    "$(curl -s "http://127.0.0.1:$PA/metrics" | awk '$1 ~ /relay_requests_total/ {n += $2} END {print n + 0}')" \
    "$(curl -s "http://127.0.0.1:$PA/metrics" | awk '$1 == "gateway_transport_relays_total{outcome=\"ok\"}" {print $2 + 0}')"
printf '%-46s %s under the body MAC, %s under SHA-256 (gateway/reqsig.h)\n' "signed bodies >= 64 KiB at B" \
    "$(curl -s "http://127.0.0.1:$PH/metrics" | awk '$1 == "gateway_signed_bodies_total{check=\"gmac\"}" {print $2 + 0}')" \
    "$(curl -s "http://127.0.0.1:$PH/metrics" | awk '$1 == "gateway_signed_bodies_total{check=\"sha256\"}" {print $2 + 0}')"
printf '%-46s A %s MiB, B %s MiB (bounds: transport.total_bytes %s MiB + 32 MiB)\n' "gateway RSS after the runs" \
    $((rssa / 1024)) $((rssh / 1024)) $(( $(build/gateway -c conf/test.yaml --print-config 2>/dev/null | awk '/total_bytes/ {print $2}' | head -1) / MIB ))
exit 0

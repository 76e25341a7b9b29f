#!/bin/sh
# deploy/run.sh - the embedded default: a private PostgreSQL under var/pg and
# one gateway node on 127.0.0.1:8080 with conf/gateway.example.yaml.
#
#   run.sh start | stop | status
#
# Nothing outside the checkout is touched (the gateway's data_dir is var/data).
set -eu
cd "$(dirname "$0")/.."
VAR=var
CONF=${GW_CONF:-conf/gateway.example.yaml}
PORT=$(awk '/^http:/ {h=1} h && /^  port:/ {print $2; exit}' "$CONF")
PORT=${GW_HTTP_PORT:-${PORT:-8080}}

gw_running() { [ -f $VAR/gateway.pid ] && kill -0 "$(cat $VAR/gateway.pid)" 2>/dev/null; }

case "${1:-start}" in
start)
    mkdir -p $VAR
    sh test/support/pg.sh start $VAR/pg
    if gw_running; then
        echo "gateway already running (pid $(cat $VAR/gateway.pid))"
    else
        GW_DB_DSN=${GW_DB_DSN:-$(sh test/support/pg.sh dsn $VAR/pg)} \
            nohup build/gateway -c "$CONF" >>$VAR/gateway.log 2>&1 </dev/null &
        echo $! >$VAR/gateway.pid
    fi
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ]; do
        i=$((i + 1))
        if [ $i -gt 200 ] || ! gw_running; then
            echo "gateway did not become ready; last log lines:" >&2
            tail -n 20 $VAR/gateway.log >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "gateway ready: http://127.0.0.1:$PORT  (node $(build/bfiactl --url "http://127.0.0.1:$PORT" --json version | jq -r .data.node_id))"
    echo "  PostgreSQL: $(sh test/support/pg.sh dsn $VAR/pg)"
    echo "  log:        $VAR/gateway.log (JSON lines)"
    echo "  try:        curl -s http://127.0.0.1:$PORT/readyz ; build/bfiactl metrics"
    echo "  stop with:  make stop"
    ;;
stop)
    if gw_running; then
        pid=$(cat $VAR/gateway.pid)
        kill -TERM "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        echo "gateway stopped"
    fi
    rm -f $VAR/gateway.pid
    [ -d $VAR/pg ] && sh test/support/pg.sh stop $VAR/pg && echo "PostgreSQL stopped"
    ;;
status)
    if gw_running; then echo "gateway running (pid $(cat $VAR/gateway.pid))"; else echo "gateway stopped"; fi
    sh test/support/pg.sh status $VAR/pg || true
    ;;
*)
    echo "usage: run.sh start|stop|status" >&2
    exit 2
    ;;
esac

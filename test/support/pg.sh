#!/bin/sh
# test/support/pg.sh - a private PostgreSQL 15 cluster for tests, the demo
# and `make run`.  Unix socket only (no TCP), owned by the postgres user
# (initdb refuses root), tuned for speed over durability.
#
#   pg.sh start DIR      create if absent, start, wait until it accepts, create db $PGDB (bfia)
#   pg.sh stop DIR       fast shutdown
#   pg.sh restart DIR
#   pg.sh status DIR
#   pg.sh dsn DIR        libpq conninfo of the database
#   pg.sh createdb DIR NAME
set -eu
BIN=/usr/lib/postgresql/15/bin
cmd=${1:?usage: pg.sh start|stop|restart|status|dsn|createdb DIR [NAME]}
dir=${2:?usage: pg.sh $cmd DIR}
PGDB=${PGDB:-bfia}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock="$dir/run"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# postgres must be able to reach DIR: open up the parents it cannot traverse
open_parents() {
    p=$1
    while [ "$p" != / ]; do
        if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$p" 2>/dev/null; then
            chmod o+x "$p"
        fi
        p=$(dirname "$p")
    done
}

ready() { "$BIN/pg_isready" -q -h "$sock" -U postgres >/dev/null 2>&1; }

psql_pg() { psql -X -q -t -A -h "$sock" -U postgres -d postgres "$@"; }

case "$cmd" in
start)
    if [ ${#sock} -gt 90 ]; then
        echo "pg.sh: socket directory path too long for a unix socket: $sock" >&2
        exit 1
    fi
    [ "$(id -u)" = 0 ] && open_parents "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        mkdir -p "$dir/data" "$sock"
        [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
        as_pg "$BIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 \
            --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
        cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
CONF
    fi
    mkdir -p "$sock"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$sock" "$dir"
    if ! ready; then
        as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start >/dev/null ||
            { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    fi
    i=0
    until ready; do
        i=$((i + 1))
        [ $i -gt 200 ] && { echo "pg.sh: PostgreSQL did not become ready" >&2; exit 1; }
        sleep 0.1
    done
    if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$PGDB'")" != 1 ]; then
        psql_pg -c "CREATE DATABASE \"$PGDB\"" >/dev/null
    fi
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    ;;
restart)
    "$0" stop "$dir"
    "$0" start "$dir"
    ;;
status)
    if ready; then echo "running ($sock)"; else echo "stopped"; exit 1; fi
    ;;
dsn)
    echo "host=$sock dbname=$PGDB user=postgres"
    ;;
createdb)
    name=${3:?usage: pg.sh createdb DIR NAME}
    psql_pg -c "CREATE DATABASE \"$name\"" >/dev/null
    ;;
*)
    echo "pg.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac

#!/bin/sh
# pg-entrypoint - PID 1 of the bfia-postgres image (busybox sh), as the
# postgres user (uid 999).
#
# First start (empty $PGDATA, a fresh volume): initdb (UTF8, locale C, trust
# on the unix socket: there is no TCP listener), then create the database
# $POSTGRES_DB (default bfia) in single-user mode, so the server is never
# up without it and a healthy pg_isready means the database exists.
# Every start: exec postgres with the socket in /run/postgresql (a volume
# the party's gateway mounts too) and no TCP port.  Stop with SIGINT (fast
# shutdown: the image's StopSignal); SIGTERM would wait for the gateway's
# connections to close.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_DB:=bfia}"
SOCK=/run/postgresql

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "pg-entrypoint: creating the cluster in $PGDATA"
    # --no-sync and fsync=off only for the creation (3 s less per party on
    # these machines); the server then runs with fsync on
    initdb -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >/tmp/initdb.log 2>&1 ||
        { cat /tmp/initdb.log; exit 1; }
    cat >>"$PGDATA/postgresql.conf" <<CONF
# bfia testbed (pg-entrypoint)
listen_addresses = ''
unix_socket_directories = '$SOCK'
max_connections = 100
shared_buffers = 64MB
log_timezone = 'UTC'
timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
CONF
    echo "CREATE DATABASE \"$POSTGRES_DB\"" |
        postgres --single -D "$PGDATA" -j -c fsync=off postgres >/tmp/createdb.log 2>&1 ||
        { cat /tmp/createdb.log; exit 1; }
    echo "pg-entrypoint: database $POSTGRES_DB created"
fi
exec postgres -D "$PGDATA" "$@"

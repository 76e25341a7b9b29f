#!/bin/sh
# deploy/compose/images.sh - the testbed's two images, built on this machine
# from its installed Debian 12 packages: no registry, no download, no
# Dockerfile, no build daemon.
#
#   sh deploy/compose/images.sh DOCKER_HOST_URL
#
# Prints two lines, GW_IMAGE=<tag> and PG_IMAGE=<tag>, the pinned tags the
# compose files use; progress goes to stderr.
#
#   bfia-gateway:<version>-<id>   build/gateway and build/bfiactl (stripped), the
#                                 migrations and conf/gateway.example.yaml, on a
#                                 base layer holding their shared libraries (the
#                                 ldd closure), busybox and the CA bundle.
#   bfia-postgres:15-<id>         PostgreSQL 15 (postgres, initdb, pg_isready,
#                                 psql, pg_dump), its libraries, share and the
#                                 time zones, busybox and an entrypoint that
#                                 creates the cluster on first start.
#
# How: each layer is a directory tree copied from the host's installed
# packages (dpkg owns every file; /usr/share/bfia/debian-packages.txt in the
# image lists package=version), packed as a deterministic tar (sorted names,
# mtime 0, numeric owners), and the image is handed to `docker load` as a
# docker-archive (manifest.json + config + layer tars) written here.  The
# same inputs give the same bytes, hence the same image id (the sha256 of the
# config): <id> in the tag is its first 12 hex digits, so a tag pins content.
#
# Cache (build/images/): the gateway's base layer and the PostgreSQL layer are
# kept as tarballs named by a key over their source files (path, size,
# mtime) and this script; when only the gateway binary changed, only its
# small top layer is rebuilt and loaded (the engine keeps the base layer).
# An image the engine already has under its tag is not loaded again.
# Older tags of our images are removed when a new one is loaded, unless a
# container still uses them or they were loaded within the hour.
set -eu
cd "$(dirname "$0")/../.."
HOST=${1:?usage: images.sh DOCKER_HOST_URL}
export DOCKER_HOST="$HOST"
C=${IMAGES_CACHE:-build/images}
GW_BIN=${GW_BIN:-build/gateway}
CTL_BIN=${CTL_BIN:-build/bfiactl}
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)
PGV=15
PGBIN=/usr/lib/postgresql/$PGV/bin
PGLIB=/usr/lib/postgresql/$PGV/lib
EPOCH=${SOURCE_DATE_EPOCH:-0}
umask 022
mkdir -p "$C"
W=$(mktemp -d /tmp/bfia-images.XXXXXX)
trap 'rm -rf "$W"' EXIT

say() { printf 'images: %s\n' "$*" >&2; }

for f in "$GW_BIN" "$CTL_BIN" "$PGBIN/postgres" /bin/busybox; do
    [ -x "$f" ] || { echo "images.sh: $f missing (make all; make deps)" >&2; exit 1; }
done

# ---- rootfs helpers ----------------------------------------------------------

# skeleton DIR: merged-/usr layout, /etc basics, busybox as /bin/sh and
# the usual applets, /tmp 1777.
skeleton() {
    d=$1
    mkdir -p "$d/usr/bin" "$d/usr/sbin" "$d/usr/lib" "$d/usr/lib64" "$d/etc" "$d/tmp" \
        "$d/var/tmp" "$d/run" "$d/proc" "$d/sys" "$d/dev" "$d/usr/share/bfia"
    chmod 1777 "$d/tmp" "$d/var/tmp"
    ln -s usr/bin "$d/bin"
    ln -s usr/sbin "$d/sbin"
    ln -s usr/lib "$d/lib"
    ln -s usr/lib64 "$d/lib64"
    cp /bin/busybox "$d/usr/bin/busybox"
    for a in sh ash cat ls ps env id mkdir rm cp mv ln chmod chown echo printf grep sed awk \
        head tail sleep test [ wc date hostname kill true false find du df vi less tr cut sort \
        uniq tar stat touch readlink dirname basename xargs which nc top free uptime; do
        ln -s busybox "$d/usr/bin/$a"
    done
    cp /etc/os-release "$d/usr/lib/os-release"
    ln -s ../usr/lib/os-release "$d/etc/os-release"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$d/etc/nsswitch.conf"
}

# libs DIR FILE...: copy the shared libraries FILEs need (ldd's closure,
# the dynamic loader included) to where the host keeps them, by soname.
libs() {
    d=$1
    shift
    ldd "$@" 2>/dev/null | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]*ld-linux/ {print $1}' |
        sort -u >"$W/libs.lst"
    while read -r l; do
        dir=$(cd "$(dirname "$l")" && pwd -P)
        mkdir -p "$d$dir"
        cp -L "$l" "$d$dir/$(basename "$l")"
        echo "$l" >>"$W/files.lst"
    done <"$W/libs.lst"
}

# packages FILE...: "package=version" of the Debian packages owning FILEs.
packages() {
    for f in "$@"; do
        echo "$f"
        case "$f" in /usr/*) echo "${f#/usr}" ;; *) echo "/usr$f" ;; esac
        readlink -f "$f"
    done | sort -u | xargs dpkg -S 2>/dev/null | grep -v '^diversion' |
        awk -F': /' '{n = split($1, a, ", "); for (i = 1; i <= n; i++) { sub(/:.*/, "", a[i]); print a[i] } }' |
        sort -u | while read -r p; do
        printf '%s=%s\n' "$p" "$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null | head -n 1)"
    done
}

# pack DIR OUT: a deterministic layer tar.
pack() {
    tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner --format=gnu \
        -C "$1" -cf "$2" .
}

# key FILE...: cache key over this script and the files' path, size, mtime.
key() {
    { cat deploy/compose/images.sh; for f in "$@"; do stat -L -c '%n %s %Y' "$f"; done; } | sha256sum | cut -c1-16
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# tsha TAR: sha() of a cached layer tar, remembered beside it
tsha() {
    [ "$1.sha256" -nt "$1" ] || sha "$1" >"$1.sha256"
    cat "$1.sha256"
}

# image NAME REPO TAGPREFIX CONFIG_JQ LAYER...: write the config (image id =
# its sha256), load the docker-archive unless the engine has it, tag, prune.
image() {
    name=$1 repo=$2 tprefix=$3 cfg=$4
    shift 4
    diffs=""
    for l in "$@"; do diffs="$diffs sha256:$(tsha "$l")"; done
    jq -n -S -c --arg created "$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)" \
        --arg diffs "$diffs" "$cfg"' | .architecture = "amd64" | .os = "linux"
        | .created = $created
        | .rootfs = {type: "layers", diff_ids: ($diffs | ltrimstr(" ") | split(" "))}' \
        >"$W/$name.json"
    id=$(sha "$W/$name.json")
    tag="$repo:$tprefix-$(printf '%s' "$id" | cut -c1-12)"
    have=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
    if [ "$have" = "sha256:$id" ]; then
        say "$tag present (reused)"
        # tagging it again marks it as in use now (Metadata.LastTagTime)
        docker tag "$tag" "$tag" >/dev/null 2>&1 || true
    else
        A="$W/archive-$name"
        mkdir -p "$A"
        cp "$W/$name.json" "$A/$id.json"
        layers=""
        for l in "$@"; do
            h=$(tsha "$l")
            mkdir -p "$A/$h"
            ln "$l" "$A/$h/layer.tar" 2>/dev/null || cp "$l" "$A/$h/layer.tar"
            layers="$layers $h/layer.tar"
        done
        jq -n -c --arg cfg "$id.json" --arg tag "$tag" --arg layers "$layers" \
            '[{Config: $cfg, RepoTags: [$tag], Layers: ($layers | ltrimstr(" ") | split(" "))}]' \
            >"$A/manifest.json"
        t0=$(date +%s%N)
        tar -C "$A" -chf - . | docker load -q >/dev/null
        have=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
        if [ "$have" != "sha256:$id" ]; then
            echo "images.sh: $tag loaded as '$have', expected sha256:$id" >&2
            exit 1
        fi
        say "$tag loaded in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        docker tag "$tag" "$tag" >/dev/null 2>&1 || true
        # older tags of this image: remove those no container uses and that
        # were not loaded in the last hour (another checkout's run may be
        # about to start containers from its own)
        now=$(date +%s)
        docker image ls --format '{{.Repository}}:{{.Tag}}' --filter "label=org.bfia.testbed.image=$name" |
            while read -r old; do
                [ "$old" = "$tag" ] && continue
                lt=$(docker image inspect -f '{{.Metadata.LastTagTime.Unix}}' "$old" 2>/dev/null || echo 0)
                [ $((now - lt)) -gt 3600 ] || continue
                docker image rm "$old" >/dev/null 2>&1 || true
            done
    fi
    echo "$tag"
}

# ---- bfia-gateway ------------------------------------------------------------
GW_SRC=$(ldd "$GW_BIN" "$CTL_BIN" | awk '/=> \// {print $3}' | sort -u)
BKEY=$(key $GW_SRC /bin/busybox /etc/ssl/certs/ca-certificates.crt /etc/os-release)
BASE="$C/gw-base-$BKEY.tar"
if [ ! -f "$BASE" ]; then
    say "gateway base layer (libraries of $GW_BIN and $CTL_BIN, busybox, CA bundle)"
    R="$W/gwbase"
    : >"$W/files.lst"
    skeleton "$R"
    libs "$R" "$GW_BIN" "$CTL_BIN"
    mkdir -p "$R/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
    mkdir -p "$R/root"
    chmod 700 "$R/root"
    # shellcheck disable=SC2046
    packages $(cat "$W/files.lst") /bin/busybox /etc/ssl/certs/ca-certificates.crt \
        >"$R/usr/share/bfia/debian-packages.txt"
    # the bundle is generated by ca-certificates' hook, so dpkg owns no path of it
    printf 'ca-certificates=%s\n' "$(dpkg-query -W -f '${Version}' ca-certificates)" \
        >>"$R/usr/share/bfia/debian-packages.txt"
    pack "$R" "$BASE.tmp"
    mv "$BASE.tmp" "$BASE"
    rm -f $(ls "$C"/gw-base-*.tar* | grep -v "$BKEY") 2>/dev/null || true
fi

R="$W/gwapp"
mkdir -p "$R/usr/bin" "$R/usr/share/bfia/migrations" "$R/etc/bfia" "$R/var/lib/bfia"
strip -o "$R/usr/bin/gateway" "$GW_BIN"
strip -o "$R/usr/bin/bfiactl" "$CTL_BIN"
cp migrations/*.sql "$R/usr/share/bfia/migrations/"
cp conf/gateway.example.yaml "$R/etc/bfia/gateway.yaml"
printf '# the peer route table (FATE-Flow format); the testbed mounts its own\n' \
    >"$R/etc/bfia/route_table.yaml"
APP="$W/gw-app.tar"
pack "$R" "$APP"
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
SRC=$(printf '%s %s' "$(tsha "$BASE")" "$(tsha "$APP")" | sha256sum | cut -c1-16)
GW_IMAGE=$(image gateway bfia-gateway "$VERSION" '{config: {
    Env: ["PATH=/usr/bin:/bin:/usr/sbin:/sbin",
          "GW_MIGRATIONS_DIR=/usr/share/bfia/migrations",
          "GW_ROUTES_FILE=/etc/bfia/route_table.yaml",
          "GW_DATA_DIR=/var/lib/bfia",
          "GW_HTTP_HOST=127.0.0.1"],
    Cmd: ["/usr/bin/gateway", "-c", "/etc/bfia/gateway.yaml"],
    WorkingDir: "/var/lib/bfia",
    StopSignal: "SIGTERM",
    Labels: {"org.bfia.testbed.image": "gateway",
             "org.bfia.source": "'"$SRC"'",
             "org.opencontainers.image.title": "bfia-gateway",
             "org.opencontainers.image.version": "'"$VERSION"'",
             "org.opencontainers.image.revision": "'"$GIT_REV"'"}},
  history: [{created_by: "deploy/compose/images.sh: libraries, busybox, CA bundle (host Debian packages)"},
            {created_by: "deploy/compose/images.sh: gateway, bfiactl, migrations, config"}]}' \
    "$BASE" "$APP")

# ---- bfia-postgres -----------------------------------------------------------
PG_FILES="$PGBIN/postgres $PGBIN/initdb $PGBIN/pg_ctl $PGBIN/pg_isready $PGBIN/psql
$PGBIN/pg_dump $PGBIN/pg_restore $PGBIN/pg_controldata"
# the server's own modules (PL/pgSQL, text search, encodings, replication);
# not JIT (it would pull in LLVM, ~100 MB) and not the contrib extensions
PG_MODS=$(ls $PGLIB/plpgsql.so $PGLIB/dict_snowball.so $PGLIB/libpqwalreceiver.so \
    $PGLIB/pgoutput.so $PGLIB/*_and_*.so)
PKEY=$(key $PG_FILES $PG_MODS deploy/compose/pg-entrypoint.sh /bin/busybox \
    /usr/share/postgresql/$PGV/postgres.bki /usr/share/zoneinfo/UTC)
PGTAR="$C/postgres-$PKEY.tar"
if [ ! -f "$PGTAR" ]; then
    say "PostgreSQL layer (postgresql-$PGV from the host's packages)"
    R="$W/pg"
    : >"$W/files.lst"
    skeleton "$R"
    libs "$R" $PG_FILES $PG_MODS
    mkdir -p "$R$PGBIN" "$R$PGLIB" "$R/usr/share/postgresql" "$R/usr/share/zoneinfo"
    for f in $PG_FILES; do cp "$f" "$R$f"; done
    for f in $PG_MODS; do cp "$f" "$R$f"; done
    cp -a /usr/share/postgresql/$PGV "$R/usr/share/postgresql/"
    rm -rf "$R/usr/share/postgresql/$PGV/man"
    cp -a /usr/share/zoneinfo/. "$R/usr/share/zoneinfo/"
    # the postgres user (uid/gid 999), its data and socket directories
    printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' >"$R/etc/passwd"
    printf 'root:x:0:\npostgres:x:999:\n' >"$R/etc/group"
    mkdir -p "$R/var/lib/postgresql/data" "$R/run/postgresql" "$R/usr/local/bin"
    chown 999:999 "$R/var/lib/postgresql" "$R/var/lib/postgresql/data" "$R/run/postgresql"
    chmod 700 "$R/var/lib/postgresql/data"
    chmod 2775 "$R/run/postgresql"
    cp deploy/compose/pg-entrypoint.sh "$R/usr/local/bin/pg-entrypoint"
    chmod 755 "$R/usr/local/bin/pg-entrypoint"
    # shellcheck disable=SC2046
    packages $(cat "$W/files.lst") $PG_FILES $PG_MODS /bin/busybox \
        /usr/share/postgresql/$PGV/postgres.bki /usr/share/zoneinfo/UTC \
        >"$R/usr/share/bfia/debian-packages.txt"
    tar --sort=name --mtime="@$EPOCH" --numeric-owner --format=gnu -C "$R" -cf "$PGTAR.tmp" .
    mv "$PGTAR.tmp" "$PGTAR"
    rm -f $(ls "$C"/postgres-*.tar* | grep -v "$PKEY") 2>/dev/null || true
fi
PGVER=$(dpkg-query -W -f '${Version}' postgresql-$PGV)
PG_IMAGE=$(image postgres bfia-postgres "$PGV" '{config: {
    Env: ["PATH=/usr/lib/postgresql/'"$PGV"'/bin:/usr/bin:/bin",
          "PGDATA=/var/lib/postgresql/data", "PGHOST=/run/postgresql", "PGUSER=postgres",
          "LANG=C"],
    Entrypoint: ["/usr/local/bin/pg-entrypoint"],
    User: "999:999",
    WorkingDir: "/var/lib/postgresql",
    StopSignal: "SIGINT",
    Labels: {"org.bfia.testbed.image": "postgres",
             "org.bfia.source": "'"$(tsha "$PGTAR" | cut -c1-16)"'",
             "org.opencontainers.image.title": "bfia-postgres",
             "org.opencontainers.image.version": "'"$PGVER"'"}},
  history: [{created_by: "deploy/compose/images.sh: postgresql-'"$PGV"' '"$PGVER"' (host Debian packages)"}]}' \
    "$PGTAR")

echo "GW_IMAGE=$GW_IMAGE"
echo "PG_IMAGE=$PG_IMAGE"

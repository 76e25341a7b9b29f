#!/bin/sh
# deploy/deps.sh - install every Debian package the project needs to build,
# test and run.  Does nothing (and asks nothing of the network) when all are
# present.  Uses sudo when not root.  An already installed Docker engine
# (Debian's docker.io, Docker CE, moby) is left alone: docker.io conflicts
# with Docker CE.
#
# docker-compose: Debian's 1.29 (Python), for the multi-party testbed
# (deploy/compose/, make testbed); it only needs the engine's API, so it works
# with docker.io, Docker CE or moby.  openssl makes the testbed parties'
# keys; binutils (strip) trims the binaries put into the testbed images.
set -eu
PKGS="build-essential pkg-config libevent-dev libcurl4-openssl-dev libcjson-dev libpq-dev
libssl-dev libyaml-dev libcmocka-dev postgresql postgresql-client curl jq wrk
ca-certificates util-linux iproute2 busybox-static tar docker-registry apache2-utils
docker-compose openssl binutils libprotobuf-c-dev protobuf-c-compiler
clang libclang-rt-14-dev"

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=""
for p in $PKGS; do
    have "$p" || missing="$missing $p"
done
engine=no
if command -v dockerd >/dev/null 2>&1 || have docker.io || have docker-ce || have moby-engine; then
    engine=yes
fi
[ "$engine" = yes ] || missing="$missing docker.io"
if ! command -v docker >/dev/null 2>&1 && [ "$engine" = yes ] && ! have docker-ce-cli; then
    # an engine without its CLI (the tests import images with `docker import`)
    have docker.io || missing="$missing docker-cli"
fi

[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done"

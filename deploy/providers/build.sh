#!/bin/sh
# deploy/providers/build.sh - build the demo provider image with no registry.
#
#   sh deploy/providers/build.sh DOCKER_HOST_URL [TAG]
#
# Compiles deploy/providers/demo/bfia_demo.c as a static binary, lays out a
# minimal rootfs (the binary, /tmp 1777, empty /etc /proc /sys /dev), tars it
# with numeric owners and imports it with `docker import`, setting the default
# command and labels naming the components.  Prints the image id.
set -eu
cd "$(dirname "$0")/../.."
HOST=${1:?usage: build.sh DOCKER_HOST_URL [TAG]}
TAG=${2:-bfia-demo:1.0.0}
W=$(mktemp -d /tmp/bfia-img.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/rootfs/tmp" "$W/rootfs/etc" "$W/rootfs/proc" "$W/rootfs/sys" "$W/rootfs/dev" \
    "$W/rootfs/data"
chmod 1777 "$W/rootfs/tmp"
${CC:-cc} -static -O2 -Wall -Wextra -o "$W/rootfs/bfia-demo" deploy/providers/demo/bfia_demo.c
cp deploy/providers/demo/components.json "$W/rootfs/components.json"
# which sources the image was built from (the tests rebuild a stale image)
SRC=$(cat deploy/providers/demo/bfia_demo.c deploy/providers/demo/components.json | sha256sum | cut -c1-16)
tar --numeric-owner --owner=0 --group=0 -C "$W/rootfs" -cf "$W/img.tar" .
docker -H "$HOST" import \
    -c 'CMD ["/bfia-demo"]' \
    -c 'LABEL org.bfia.provider=bfia-demo org.bfia.provider.version=1.0.0 component.0.name=hash_ids component.1.name=col_stats' \
    -c "LABEL org.bfia.source=$SRC" \
    "$W/img.tar" "$TAG" >/dev/null
# re-importing a tag leaves the old image dangling: remove those
docker -H "$HOST" image prune -f --filter label=org.bfia.provider=bfia-demo >/dev/null 2>&1 || true
docker -H "$HOST" image inspect -f '{{.Id}}' "$TAG"

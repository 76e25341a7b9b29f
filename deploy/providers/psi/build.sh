#!/bin/sh
# deploy/providers/psi/build.sh - build the ECDH-PSI provider image with no
# registry.
#
#   sh deploy/providers/psi/build.sh DOCKER_HOST_URL [TAG]
#
# Builds the static binary build/providers/ecdh-psi (make; libcrypto and
# protobuf-c linked in), lays out a minimal rootfs (the binary, the
# provider description, /tmp 1777, empty /etc /proc /sys /dev /data), tars
# it with numeric owners and imports it with `docker import`, setting the
# default command and labels (provider, component, and org.bfia.source: a
# digest of the sources, so a stale image can be detected).  Prints the
# image id.  TAG defaults to the image named in provider.json.
set -eu
cd "$(dirname "$0")/../../.."
HOST=${1:?usage: build.sh DOCKER_HOST_URL [TAG]}
TAG=${2:-$(jq -r .metadata.image deploy/providers/psi/provider.json)}
make -s build/providers/ecdh-psi >/dev/null
W=$(mktemp -d /tmp/bfia-psi-img.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/rootfs/tmp" "$W/rootfs/etc" "$W/rootfs/proc" "$W/rootfs/sys" "$W/rootfs/dev" \
    "$W/rootfs/data"
chmod 1777 "$W/rootfs/tmp"
cp build/providers/ecdh-psi "$W/rootfs/ecdh-psi"
jq .components_description deploy/providers/psi/provider.json >"$W/rootfs/components.json"
# which sources the image was built from (tests rebuild a stale image)
SRC=$(cat deploy/providers/psi/*.c deploy/providers/psi/*.h deploy/providers/psi/proto/*.proto \
    deploy/providers/psi/provider.json | sha256sum | cut -c1-16)
VER=$(jq -r .version deploy/providers/psi/provider.json)
tar --numeric-owner --owner=0 --group=0 -C "$W/rootfs" -cf "$W/img.tar" .
docker -H "$HOST" import \
    -c 'CMD ["/ecdh-psi"]' \
    -c "LABEL org.bfia.provider=bfia-psi org.bfia.provider.version=$VER component.0.name=ecdh_psi" \
    -c "LABEL org.bfia.source=$SRC" \
    "$W/img.tar" "$TAG" >/dev/null
# re-importing a tag leaves the old image dangling: remove those
docker -H "$HOST" image prune -f --filter label=org.bfia.provider=bfia-psi >/dev/null 2>&1 || true
docker -H "$HOST" image inspect -f '{{.Id}}' "$TAG"

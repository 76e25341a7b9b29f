#!/bin/sh
# test/support/dockerd.sh - a Docker engine for tests and the demo.
#
#   dockerd.sh ensure DIR   print the engine URL to use: the machine's engine when
#                           one answers on /var/run/docker.sock, else a private
#                           dockerd started under DIR (unix://DIR/docker.sock)
#   dockerd.sh stop DIR     stop the private engine if this script started it
#
# The private engine follows spec/docker-engine.md §4.2: no iptables, no
# bridge (host and none networks only), overlay2 falling back to vfs.
# --bridge=none deletes an existing docker0, so it is only started when no
# other engine is running on this host.
set -eu
cmd=${1:?usage: dockerd.sh ensure|stop DIR}
dir=${2:?usage: dockerd.sh $cmd DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock="$dir/docker.sock"

ping() { curl -s -m 2 --unix-socket "$1" http://localhost/_ping 2>/dev/null | grep -q OK; }

case "$cmd" in
ensure)
    if [ -S /var/run/docker.sock ] && ping /var/run/docker.sock; then
        echo "unix:///var/run/docker.sock"
        exit 0
    fi
    if [ -f "$dir/owned" ] && ping "$sock"; then
        echo "unix://$sock"
        exit 0
    fi
    if pgrep -x dockerd >/dev/null 2>&1; then
        echo "dockerd.sh: a dockerd is running but does not answer on /var/run/docker.sock;" \
            "refusing to start a second one with --bridge=none" >&2
        exit 1
    fi
    if [ ${#sock} -gt 100 ]; then
        echo "dockerd.sh: socket path too long: $sock" >&2
        exit 1
    fi
    mkdir -p "$dir/root" "$dir/exec"
    for driver in overlay2 vfs; do
        dockerd --host "unix://$sock" --data-root "$dir/root" --exec-root "$dir/exec" \
            --pidfile "$dir/docker.pid" --iptables=false --ip6tables=false --ip-masq=false \
            --bridge=none --storage-driver=$driver >"$dir/dockerd.log" 2>&1 &
        echo $! >"$dir/dockerd.pid"
        i=0
        while [ $i -lt 300 ]; do
            ping "$sock" && break
            kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null || break
            sleep 0.1
            i=$((i + 1))
        done
        if ping "$sock"; then
            echo 1 >"$dir/owned"
            echo "unix://$sock"
            exit 0
        fi
        kill "$(cat "$dir/dockerd.pid")" 2>/dev/null || true
        sleep 1
    done
    echo "dockerd.sh: could not start a private dockerd; see $dir/dockerd.log" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/owned" ] || exit 0
    if [ -f "$dir/dockerd.pid" ]; then
        pid=$(cat "$dir/dockerd.pid")
        # remove what the tests left, then stop the daemon
        if ping "$sock"; then
            ids=$(docker -H "unix://$sock" ps -aq 2>/dev/null || true)
            [ -n "$ids" ] && docker -H "unix://$sock" rm -f $ids >/dev/null 2>&1 || true
        fi
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # the managed containerd exits after dockerd; wait so a restart works
    i=0
    while pgrep -f "containerd.*$dir" >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    # dockerd leaves its netns and data-root mounts behind
    grep " $dir" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -f "$dir/owned"
    ;;
*)
    echo "dockerd.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac

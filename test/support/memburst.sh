#!/bin/sh
# test/support/memburst.sh - a gateway's resident memory through bursts,
# for t_robust (which bounds it) and make bench (which prints it).
#
#   sh test/support/memburst.sh PORT PID LOADCONN
#
# Prints one "rss_<stage>_kb=N" line per stage:
#   start     after start-up, idle
#   refused   after 10,000 requests refused (5001, missing field), 8 at a time
#   bodies    right after 4,000 requests with 60 KB bodies, 300 at a time
#   settled   12 s later (the gateway returns free heap memory every 5 s)
#   conns     6 s after a burst of 2,000 connections held at once (LOADCONN)
# Loopback only; needs ab (apache2-utils).
set -u
P=$1
PID=$2
LOADCONN=$3
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$PID/status"; }
tmp=$(mktemp /tmp/memburst.XXXXXX)
head -c 60000 /dev/zero | tr '\0' 'a' >"$tmp"
echo "rss_start_kb=$(rss)"
ab -q -n 10000 -c 8 "http://127.0.0.1:$P/v1/platform/route/get" >/dev/null 2>&1
echo "rss_refused_kb=$(rss)"
ab -q -n 4000 -c 300 -p "$tmp" -T application/json \
    "http://127.0.0.1:$P/v1/platform/schedule/job/create_all" >/dev/null 2>&1
echo "rss_bodies_kb=$(rss)"
sleep 12
echo "rss_settled_kb=$(rss)"
"$LOADCONN" "$P" 2000 /healthz >/dev/null
sleep 6
echo "rss_conns_kb=$(rss)"
rm -f "$tmp"

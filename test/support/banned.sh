#!/bin/sh
# test/support/banned.sh - calls that must never run on the event loop
# (STYLE.md 7), found by name in the gateway's sources.
#
# Banned: PQexec*, PQconnectdb*, PQcancel (blocking in libpq 15),
# curl_easy_perform, getaddrinfo, sleep/usleep/nanosleep, system, and
# fsync/fdatasync (they wait for the disk).  A call is allowed when
#   - its file is on the allow-list below (a separate program, or code that
#     runs before the loop starts), or
#   - its line carries a "banned-ok: <reason>" comment (code that runs on
#     the file I/O thread, or only before the loop).
# Test tools (test/) and algorithm providers (deploy/providers/) are
# separate programs and are not scanned.
#
# Exit 0 when every banned call is allowed; otherwise prints each one as
# file:line: call and exits 1.
set -u
cd "$(dirname "$0")/../.."

# file            why it may block
ALLOW='
gateway/ctl.c        bfiactl: a command-line program, no event loop
gateway/db_migrate.c start-up: migrations run before the loop, blocking on purpose
'

PATTERN='\<(PQexec[A-Za-z]*|PQconnectdb[A-Za-z]*|PQcancel|curl_easy_perform|getaddrinfo|sleep|usleep|nanosleep|system|fsync|fdatasync)[[:space:]]*\('

allowed_file() {
    printf '%s\n' "$ALLOW" | awk -v f="$1" '$1 == f { found = 1 } END { exit !found }'
}

bad=0
checked=0
for f in $(ls gateway/*.c gateway/*.h routes/*.c routes/*.h scheduler/*.c scheduler/*.h \
           container/*.c container/*.h 2>/dev/null); do
    checked=$((checked + 1))
    allowed_file "$f" && continue
    # drop comments (one-line ones, // ones, and the " * " lines of a block),
    # keeping line numbers, then look for calls
    hits=$(sed -e 's|/\*.*\*/||g' -e 's|//.*$||' -e 's|^[[:space:]]*\*.*$||' "$f" |
           grep -nE "$PATTERN" || true)
    [ -z "$hits" ] && continue
    while IFS= read -r h; do
        n=${h%%:*}
        line=$(sed -n "${n}p" "$f")
        case "$line" in *"banned-ok:"*) continue ;; esac
        # a multi-line call: the marker may sit on the next line
        case "$(sed -n "$((n + 1))p" "$f")" in *"banned-ok:"*) continue ;; esac
        echo "$f:$n: $(printf '%s' "$line" | sed 's/^[[:space:]]*//')"
        bad=$((bad + 1))
    done <<EOT
$hits
EOT
done
if [ "$checked" -eq 0 ]; then
    echo "banned: no source file found"
    exit 1
fi
if [ "$bad" -gt 0 ]; then
    echo "banned: $bad call(s) that may block the event loop (STYLE.md 7); move them off the"
    echo "loop, or mark a line that runs elsewhere with a 'banned-ok: <reason>' comment"
    exit 1
fi
echo "banned: $checked files, no blocking call on the loop"

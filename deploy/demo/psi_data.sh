#!/bin/sh
# deploy/demo/psi_data.sh - the PSI demo's two ID sets, generated
# deterministically (same arguments, same bytes, whatever the machine).
#
#   sh deploy/demo/psi_data.sh DIR [N_GUEST N_HOST N_SHARED]
#
# Writes DIR/psi_guest.csv (id,age,score) and DIR/psi_host.csv
# (id,city,amount), N_GUEST and N_HOST rows (default 3000 and 2500), of
# which exactly N_SHARED ids (default 1200) are on both sides.  Ids look
# like mobile numbers (138 and 8 digits, all distinct); rows are in a
# scrambled order so matches are spread through both files.
set -eu
DIR=${1:?usage: psi_data.sh DIR [N_GUEST N_HOST N_SHARED]}
NG=${2:-3000} NH=${3:-2500} NS=${4:-1200}
if [ "$NS" -gt "$NG" ] || [ "$NS" -gt "$NH" ] || [ "$NG" -gt 50000000 ] || [ "$NH" -gt 50000000 ]; then
    echo "psi_data.sh: need N_SHARED <= N_GUEST, N_HOST <= 50,000,000" >&2
    exit 2
fi
mkdir -p "$DIR"
# gen FIRST N HEADER KIND: ids u = FIRST .. FIRST+N-1, row k holding u = FIRST + (k * s) mod N
# for a stride s prime to N (a permutation), id = 138 followed by (u * 7919) mod 10^8
gen() {
    awk -v first="$1" -v n="$2" -v head="$3" -v kind="$4" '
    function gcd(a, b) { while (b) { t = b; b = a % b; a = t } return a }
    BEGIN {
        split("7919 104729 1299709 15485863", primes, " ")
        s = 1
        for (i = 1; i <= 4; i++) if (gcd(primes[i], n) == 1) { s = primes[i]; break }
        split("Beijing Shanghai Shenzhen Hangzhou Chengdu Wuhan Xian Nanjing", city, " ")
        print head
        for (k = 0; k < n; k++) {
            u = first + (k * s) % n
            id = sprintf("138%08d", (u * 7919) % 100000000)
            if (kind == "guest")
                printf "%s,%d,%.1f\n", id, 18 + (u * 13) % 60, ((u * 37) % 1000) / 10
            else
                printf "%s,%s,%d\n", id, city[1 + (u * 5) % 8], 100 + (u * 211) % 9900
        }
    }'
}
gen 0 "$NG" id,age,score guest >"$DIR/psi_guest.csv"
gen $((NG - NS)) "$NH" id,city,amount host >"$DIR/psi_host.csv"

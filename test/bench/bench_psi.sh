#!/bin/sh
# test/bench/bench_psi.sh - ECDH-PSI end to end next to its bound (issue 15):
# 1,000,000 x 1,000,000 and 100,000 x 100,000 IDs (50 % shared), the two
# parties as two processes on this machine's cores, each run next to the
# time OpenSSL needs for the same X25519 multiplications on all cores,
# measured in the same run.  Targets: end to end <= 1.3 x bound, peak RSS
# <= 256 MB per party.  PSI_BENCH_SIZES="NG NH ..." to change the sizes.
# Through two gateways, in real containers: test/bench/bench_psi_gw.sh.
set -eu
cd "$(dirname "$0")/../.."
B=${OUT:-build}/tools/psi_bench
[ -x "$B" ] || make -s "$B"
# shellcheck disable=SC2086
nice -n 10 "$B" ${PSI_BENCH_SIZES:-1000000 1000000 100000 100000}

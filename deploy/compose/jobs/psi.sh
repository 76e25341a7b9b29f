# deploy/compose/jobs/psi.sh - the testbed's PSI job (TESTBED_JOB=psi, the
# default): a private set intersection between the first two parties with
# the ECDH-PSI component (deploy/providers/psi), then the demo provider's
# col_stats reading each party's intersection (deploy/demo/psi_job.json).
# Sourced by deploy/compose/testbed.sh from the checkout's root; the four
# functions are described in jobs/demo.sh.
#
# ECDH-PSI is a two-party protocol: the first party is guest.0, the second
# host.0; a third party joins the job as its arbiter: it takes part in the
# control layer (job/create, start, stop, signed) and runs no task, as
# neither component lists that role.
# The ID sets come from deploy/demo/psi_data.sh (TESTBED_PSI_IDS="N_GUEST
# N_HOST N_SHARED", default 3000 2500 1200), so the expected number of
# matched rows is known.

PSI_IDS=${TESTBED_PSI_IDS:-3000 2500 1200}

# psi_current DOCKER_HOST TAG SOURCES...: the image's source label matches
psi_current() {
    _h=$1 _t=$2
    shift 2
    [ "$(docker -H "$_h" image inspect -f '{{index .Config.Labels "org.bfia.source"}}' "$_t" \
        2>/dev/null)" = "$(cat "$@" | sha256sum | cut -c1-16)" ]
}

job_images() {
    if ! psi_current "$1" bfia-demo:1.0.0 deploy/providers/demo/bfia_demo.c \
        deploy/providers/demo/components.json; then
        echo "building the demo provider image (deploy/providers/build.sh)"
        sh deploy/providers/build.sh "$1" >/dev/null
    fi
    if ! psi_current "$1" bfia-ecdh-psi:1.0.0 deploy/providers/psi/*.c deploy/providers/psi/*.h \
        deploy/providers/psi/proto/*.proto deploy/providers/psi/provider.json; then
        echo "building the ECDH-PSI provider image (deploy/providers/psi/build.sh)"
        sh deploy/providers/psi/build.sh "$1" >/dev/null
    fi
}

job_prepare() {
    _r=$(sh deploy/demo/provider.sh "$1") || { echo "provider registration failed at $1" >&2; return 1; }
    [ "$(printf '%s' "$_r" | jq -r .code)" = 0 ] || { echo "bfia-demo refused at $1: $_r" >&2; return 1; }
    _r=$(build/bfiactl --url "$1" --json provider register deploy/providers/psi/provider.json) ||
        { echo "bfia-psi registration failed at $1: $_r" >&2; return 1; }
    [ "$(printf '%s' "$_r" | jq -r .code)" = 0 ] || { echo "bfia-psi refused at $1: $_r" >&2; return 1; }
    [ "$2" -le 1 ] || return 0 # a third party is the arbiter: no data
    # shellcheck disable=SC2086
    sh deploy/demo/psi_data.sh "$TB/job-data" $PSI_IDS
    if [ "$2" = 0 ]; then _d=psi_guest; else _d=psi_host; fi
    build/bfiactl --url "$1" dataset upload "$TB/job-data/$_d.csv" demo "$_d" >/dev/null
}

job_body() {
    [ $# -ge 2 ] || { echo "the PSI job needs two parties" >&2; return 1; }
    jq -c --arg g "$1" --arg h "$2" --arg a "${3:-}" '
        .config.initiator.node_id = $g
        | .config.role = {guest: [$g], host: [$h]}
        | if $a != "" then .config.role.arbiter = [$a] else . end' \
        deploy/demo/psi_job.json
}

job_report() {
    case $4 in
    0) _role=guest.0 _n=$(echo $PSI_IDS | cut -d' ' -f1) ;;
    1) _role=host.0 _n=$(echo $PSI_IDS | cut -d' ' -f2) ;;
    *) echo "the job's arbiter: no task (ECDH-PSI runs between the first two parties)"; return 0 ;;
    esac
    _p="$1/storage/$2/psi_0.report.$_role/data"
    _c="$1/storage/$2/col_stats_0.report.$_role/data"
    if [ -f "$_p" ]; then
        printf 'psi (%s): %s of %s ids matched (%s shared); col_stats read %s rows of the intersection\n' \
            "$_role" "$(jq -r .intersection_count "$_p")" "$_n" "$(echo $PSI_IDS | cut -d' ' -f3)" \
            "$(jq -r '.rows // "?"' "$_c" 2>/dev/null || echo '?')"
    else
        printf 'no psi report for %s\n' "$_role"
    fi
}

# deploy/compose/jobs/demo.sh - the testbed's demo job (TESTBED_JOB=demo):
# the demo provider's hash_ids then col_stats, on every party (the default
# job is jobs/psi.sh).  Sourced by
# deploy/compose/testbed.sh from the checkout's root.
#
# A job kit defines four functions (another kit, e.g. jobs/psi.sh, defines the
# same four; TESTBED_JOB=demo or TESTBED_JOB=path/to/kit.sh selects it; a kit
# may keep generated files in $TB/job-data, which testbed-down removes):
#   job_images DOCKER_HOST      build/import the provider images it needs
#                               (offline), unless the engine has them current
#   job_prepare URL INDEX       register the providers and upload the datasets
#                               on one party (INDEX 0 is the initiator); exit
#                               non-zero with a message on failure
#   job_body NODE_ID...         the job (create_all body) across these parties,
#                               the first one initiating, on stdout
#   job_report DATA_DIR JOB NODE_ID INDEX
#                               one line: what the job left at that party

job_images() {
    _src=$(cat deploy/providers/demo/bfia_demo.c deploy/providers/demo/components.json |
        sha256sum | cut -c1-16)
    [ "$(docker -H "$1" image inspect -f '{{index .Config.Labels "org.bfia.source"}}' \
        bfia-demo:1.0.0 2>/dev/null)" = "$_src" ] && return 0
    echo "building the demo provider image (deploy/providers/build.sh)"
    sh deploy/providers/build.sh "$1" >/dev/null
}

job_prepare() {
    _r=$(sh deploy/demo/provider.sh "$1") || { echo "provider registration failed at $1" >&2; return 1; }
    if [ "$(printf '%s' "$_r" | jq -r .code)" != 0 ]; then
        echo "provider registration refused at $1: $_r" >&2
        return 1
    fi
    if [ "$2" = 0 ]; then _d=guest; else _d=host; fi
    build/bfiactl --url "$1" dataset upload "deploy/demo/data/$_d.csv" demo "$_d" >/dev/null
}

# guest: the first party; host: every other one (role indices 0, 1, ...)
job_body() {
    _g=$1
    shift
    _hosts=$(printf '%s\n' "$@" | jq -R . | jq -s -c .)
    jq -c --arg g "$_g" --argjson h "$_hosts" '
        .config.initiator.node_id = $g
        | .config.role = {guest: [$g], host: $h}
        | .config.job_params.host = ([range(0; $h | length)] | map({key: tostring,
              value: {resources: {cpu: 1, memory_mb: 128}}}) | from_entries)
        | .config.task_params.host = ([range(0; $h | length)] | map({key: tostring,
              value: {hash_ids_0: {dataset_id: "demo#host"}}}) | from_entries)' \
        deploy/demo/job.json
}

job_report() {
    if [ "$4" = 0 ]; then _role=guest.0; else _role=host.$(($4 - 1)); fi
    _f="$1/storage/$2/col_stats_0.report.$_role/data"
    if [ -f "$_f" ]; then
        printf 'col_stats report (%s): %s\n' "$_role" "$(head -c 240 "$_f" | tr -d '\n')"
    else
        printf 'no col_stats report for %s\n' "$_role"
    fi
}

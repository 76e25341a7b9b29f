# t_container.sh - the container runtime on a real Docker engine: provider
# registration, datasets, the task launch contract (env, labels, limits,
# mounts, security options checked with inspect), exit codes, OOM, a missing
# image, restart and reconcile, an orphan container, 20 concurrent launches.
. test/integration/lib.sh

if ! docker_up; then
    fail engine_available "no Docker engine could be started"
    exit 0
fi
pass engine_available
DK() { docker -H "$DOCKER_URL" "$@"; }

A=JG0100001100000010
PA=$(free_port)
R="$T_ROOT/routes_c.yaml"
routes_file "$R" $A "$PA"
new_db ca
node_start ca $A "$PA" "$R" GW_DOCKER_RETAIN_S=0
gw_ready "$PA" 20
expect node_ready "$?" 0

# --- provider registration ----------------------------------------------------
provs() { psql_db ca -c "SELECT count(*) FROM t_provider"; }
# the image must be absent for the first check: a tag left by an earlier run
# on the same engine is removed (the tag only; bfia-demo keeps its layers)
DK rmi unionpay:2.0.0 >/dev/null 2>&1 || true
r=$(api POST "$PA" /v2/provider/register "$(cat ../shared/fixtures/provider-register-unionpay.json 2>/dev/null || cat test/unit/data/provider-register-unionpay.json)")
expect register_unknown_image_refused "$(code_of "$r")" 5002
case "$(printf '%s' "$r" | jq -r .msg)" in *"not on this node's Docker engine"*) pass register_unknown_image_says_so ;; *) fail register_unknown_image_says_so "$r" ;; esac
DK tag bfia-demo:1.0.0 unionpay:2.0.0
r=$(api POST "$PA" /v2/provider/register "$(cat test/unit/data/provider-register-unionpay.json)")
expect register_unionpay_fixture "$(code_of "$r")" 0
expect register_unionpay_components "$(psql_db ca -c "SELECT count(*) FROM t_component WHERE provider='unionpay'")" "$(jq '.components_description | length' test/unit/data/provider-register-unionpay.json)"
expect register_lenient_optional_string_normalised "$(psql_db ca -c "SELECT jsonb_typeof(description->'inputParam'->0->'optional') FROM t_component WHERE provider='unionpay' LIMIT 1")" boolean
r=$(register_demo "$PA")
expect register_demo "$(printf '%s' "$r" | jq -r '(.code|tostring) + " " + .msg')" "0 create success"
digest=$(DK image inspect -f '{{.Id}}' bfia-demo:1.0.0)
expect register_pins_digest "$(psql_db ca -c "SELECT image_digest FROM t_provider WHERE name='bfia-demo'")" "$digest"
# the driver's /events stream follows a labelled container's life on the engine
"$OUT/tools/dockertool" "$DOCKER_URL" events org.bfia.evtest=1 5 >"$T_ROOT/events.out" 2>"$T_ROOT/events.err" &
EVPID=$!
sleep 1
DK run --rm --network host --label org.bfia.evtest=1 --name bfia-evtest bfia-demo:1.0.0 >/dev/null 2>&1
DK run --rm --network host --label org.bfia.evtest=2 --name bfia-evother bfia-demo:1.0.0 >/dev/null 2>&1
wait "$EVPID"
expect events_stream_lifecycle "$(awk '$2 == "bfia-evtest" && ($1 == "create" || $1 == "start" || $1 == "die" || $1 == "destroy") {print $1}' "$T_ROOT/events.out" | tr '\n' ' ')" "create start die destroy "
expect events_stream_filtered_by_label "$(grep -c bfia-evother "$T_ROOT/events.out")" 0
r=$(register_demo "$PA")
expect reregister_is_update "$(printf '%s' "$r" | jq -r .msg)" "update success"
n0=$(provs)
badreg() { # NAME FILTER WANT_SUBSTRING
    _b=$(jq -n --slurpfile c deploy/providers/demo/components.json '{name:"bad",device:"docker",version:"1.0.0",metadata:{image:"bfia-demo:1.0.0"},components_description:$c[0]}' | jq -c "$2")
    _r=$(api POST "$PA" /v2/provider/register "$_b")
    expect "register_bad_$1_code" "$(code_of "$_r")" 5001
    case "$(printf '%s' "$_r" | jq -r .msg)" in *"$3"*) pass "register_bad_$1_names_field" ;; *) fail "register_bad_$1_names_field" "$_r" ;; esac
}
badreg no_rolelist 'del(.components_description.hash_ids.roleList)' roleList
badreg optional_maybe '.components_description.hash_ids.inputParam[0].optional = "maybe"' optional
badreg device_k8s '.device = "k8s"' device
badreg hostile_name '.name = "../../x"' name
badreg image_hostile '.metadata.image = "x;rm -rf /"' metadata.image
badreg key_mismatch '.components_description.other = .components_description.hash_ids' componentName
badreg inputdata_no_name 'del(.components_description.col_stats.inputData[0].name)' inputData
r=$(api POST "$PA" /v2/provider/register '{"name":')
expect register_malformed_json "$(code_of "$r")" 5001
expect register_bad_changes_nothing "$(provs)" "$n0"
desc=$(jq -c '.hash_ids | .provider = "std-vendor" | .version = "0.1"' deploy/providers/demo/components.json)
r=$(api POST "$PA" /v1/platform/schedule/component/register "{\"imageUrl\":\"bfia-demo:1.0.0\",\"component_info\":$desc}")
expect standard_component_register "$(code_of "$r")" 0
expect same_component_name_two_vendors "$(psql_db ca -c "SELECT count(*) FROM t_component WHERE component_name='hash_ids'")" 2
r=$(api GET "$PA" "/v2/provider/query?name=bfia-demo")
expect provider_query "$(printf '%s' "$r" | jq -r '.data.providers[0].components | keys | join(",")')" "chan_probe,col_stats,hash_ids,joint_stats"
r=$(api POST "$PA" /v2/provider/delete '{"name":"std-vendor","version":"0.1"}')
expect provider_delete "$(code_of "$r"):$(psql_db ca -c "SELECT count(*) FROM t_component WHERE provider='std-vendor'")" 0:0
r=$(api POST "$PA" /v2/provider/delete '{"name":"std-vendor","version":"0.1"}')
expect provider_delete_unknown "$(code_of "$r")" 5002

# --- datasets -------------------------------------------------------------------
expect upload_multipart "$(code_of "$(upload "$PA" demo guest deploy/demo/data/guest.csv)")" 0
expect upload_multipart_host "$(code_of "$(upload "$PA" demo host deploy/demo/data/host.csv)")" 0
check upload_stored_bytes cmp deploy/demo/data/guest.csv "$T_ROOT/ca/data/storage/demo/guest/data"
expect upload_sha256 "$(psql_db ca -c "SELECT sha256 FROM t_dataset WHERE name='guest'")" "$(sha256sum deploy/demo/data/guest.csv | cut -d' ' -f1)"
d0=$(psql_db ca -c "SELECT count(*) FROM t_dataset")
for bad in '../../etc' '.hidden' 'a/b' 'x y' '..' "$(printf 'a\001b')" '#x'; do
    r=$(curl -s -F "namespace=demo" -F "name=$bad" -F "file=@deploy/demo/data/guest.csv" "http://127.0.0.1:$PA/v2/component/upload/file")
    expect "upload_hostile_name_refused_$(printf '%s' "$bad" | od -An -tx1 | tr -d ' \n')" "$(code_of "$r")" 5001
done
r=$(curl -s -F "namespace=../x" -F "name=ok" -F "file=@deploy/demo/data/guest.csv" "http://127.0.0.1:$PA/v2/component/upload/file")
expect upload_hostile_namespace_refused "$(code_of "$r")" 5001
r=$(curl -s -H 'Content-Type: multipart/form-data; boundary=zz' --data-binary 'garbage' "http://127.0.0.1:$PA/v2/component/upload/file")
expect upload_malformed_multipart "$(code_of "$r")" 5001
r=$(api POST "$PA" /v2/component/upload '{"file":"/etc/passwd","namespace":"x","name":"y"}')
expect upload_path_outside_import_refused "$(code_of "$r")" 5001
r=$(api POST "$PA" /v2/component/upload '{"file":"../../etc/passwd","namespace":"x","name":"y"}')
expect upload_path_dotdot_refused "$(code_of "$r")" 5001
mkdir -p "$T_ROOT/ca/data/import" && cp deploy/demo/data/host.csv "$T_ROOT/ca/data/import/h.csv"
r=$(api POST "$PA" /v2/component/upload '{"file":"h.csv","namespace":"imp","name":"h","head":true}')
expect upload_path_from_import "$(code_of "$r")" 0
expect hostile_uploads_change_nothing "$(psql_db ca -c "SELECT count(*) FROM t_dataset")" "$((d0 + 1))"
# '../../etc' under storage/demo would land in data/etc; '../x' in data/x
check nothing_escaped_storage sh -c "! ls -d '$T_ROOT/ca/data/etc' '$T_ROOT/ca/data/x' '$T_ROOT/ca/data/storage/x' 2>/dev/null"
expect nothing_escaped_storage_only_known_dirs "$(ls "$T_ROOT/ca/data/storage" | sort | tr "\n" " ")" "demo imp "
# --- multipart bodies stream to disk: a 100 MB upload keeps memory flat ----------
# Measured on a node of its own whose ASan quarantine is small: by default
# ASan holds up to 256 MB of freed memory back, which would hide the point.
head -c 104857600 /dev/urandom >"$T_ROOT/big.bin"
PU=$(free_port)
new_db cu
node_start cu $A "$PU" "$R" "ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=4"
gw_ready "$PU" 20
hwm() { awk '/VmHWM/ {print $2}' "/proc/$(gw_pid cu)/status"; }
h0=$(hwm)
r=$(curl -s -F namespace=big -F name=b100 -F "file=@$T_ROOT/big.bin" "http://127.0.0.1:$PU/v2/component/upload/file")
h1=$(hwm)
expect upload_100mb_stored "$(code_of "$r") $(printf '%s' "$r" | jq -r .data.size)" "0 104857600"
expect upload_100mb_sha256 "$(printf '%s' "$r" | jq -r .data.sha256)" "$(sha256sum "$T_ROOT/big.bin" | cut -d' ' -f1)"
check upload_100mb_bytes cmp "$T_ROOT/big.bin" "$T_ROOT/cu/data/storage/big/b100/data"
check upload_100mb_memory_flat test $((h1 - h0)) -lt 16384
echo "upload 100 MB: gateway peak RSS $h0 kB before, $h1 kB after"
rm -f "$T_ROOT/big.bin"
gw_stop cu
expect cu_exit_clean "$GW_RC" 0
check cu_sanitizer_clean sanitizer_clean cu
# keep-alive: two uploads and a plain request on one connection
r=$(curl -s -F namespace=ka -F name=one -F "file=@deploy/demo/data/guest.csv" "http://127.0.0.1:$PA/v2/component/upload/file" \
    --next -s -F namespace=ka -F name=two -F "file=@deploy/demo/data/host.csv" "http://127.0.0.1:$PA/v2/component/upload/file" \
    --next -s "http://127.0.0.1:$PA/version")
expect upload_keepalive_two_then_get "$(printf '%s' "$r" | jq -rs '[.[0].data.name, .[1].data.name, (.[2].data.node_id | length > 0)] | join(",")')" "one,two,true"
check upload_keepalive_bytes cmp deploy/demo/data/host.csv "$T_ROOT/ca/data/storage/ka/two/data"
# a client that leaves mid-body: nothing stored, no spool file left, still serving
head -c 8000000 /dev/zero >"$T_ROOT/z.bin"
curl -s -m 1 --limit-rate 1M -F namespace=gone -F name=half -F "file=@$T_ROOT/z.bin" "http://127.0.0.1:$PA/v2/component/upload/file" >/dev/null 2>&1
sleep 0.5
expect upload_abandoned_stores_nothing "$(psql_db ca -c "SELECT count(*) FROM t_dataset WHERE namespace='gone'")" 0
check upload_spool_dir_exists test -d "$T_ROOT/ca/data/storage/.spool"
expect upload_abandoned_spool_cleaned "$(ls -A "$T_ROOT/ca/data/storage/.spool" | wc -l)" 0
expect upload_abandoned_still_serving "$(http_status "http://127.0.0.1:$PA/healthz")" 200
rm -f "$T_ROOT/z.bin"
# streamed bodies get the same checks: unterminated, no file part, two files
mpb() { printf -- '--B1\r\nContent-Disposition: form-data; name="namespace"\r\n\r\nmp\r\n--B1\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n%b' "$1"; }
mpost() { curl -s -H 'Content-Type: multipart/form-data; boundary=B1' --data-binary "$1" "http://127.0.0.1:$PA/v2/component/upload/file"; }
r=$(mpost "$(mpb '--B1\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nabc')")
expect upload_stream_unterminated "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg)" "5001 body: multipart part not terminated"
r=$(mpost "$(mpb '--B1--\r\n')")
expect upload_stream_no_file "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg)" "5001 file: no file part in the form"
r=$(mpost "$(mpb '--B1\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\na\r\n--B1\r\nContent-Disposition: form-data; name="file2"; filename="g"\r\n\r\nb\r\n--B1--\r\n')")
expect upload_stream_two_files "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg)" "5001 file: more than one file part"
expect upload_stream_refusals_store_nothing "$(psql_db ca -c "SELECT count(*) FROM t_dataset WHERE namespace='mp'")" 0
expect upload_stream_refusals_spool_cleaned "$(ls -A "$T_ROOT/ca/data/storage/.spool" | wc -l)" 0
r=$(api GET "$PA" "/v2/component/dataset/list?namespace=demo")
expect dataset_list "$(printf '%s' "$r" | jq -r '[.data.datasets[].dataset_id] | join(",")')" "demo#guest,demo#host"

# --- one-node jobs (the node plays guest and host) ------------------------------
one() { jq -c --arg a "$A" '.config.role = {guest:[$a], host:[$a]} | .config.initiator.node_id = $a | .config.job_params.common.sync_type = "poll" | '"${1:-.}" deploy/demo/job.json; }
submit() { api POST "$PA" /v1/platform/schedule/job/create_all "$1" | jq -r '.data.job_id // ""'; }

J=$(submit "$(one '.config.task_params.common.hash_ids_0.sleep_ms = 8000 | .config.job_params.guest["0"].resources = {cpu: 0.5, memory_mb: 64}')")
i=0
while [ "$(DK ps -q --filter "label=org.bfia.job=$J" | wc -l)" != 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
TID=$(psql_db ca -c "SELECT task_id FROM t_task WHERE job_id='$J' AND task_name='hash_ids_0' LIMIT 1")
CN="guest-$A-$TID-0"
ins=$(DK inspect "$CN")
jqi() { printf '%s' "$ins" | jq -r "$1"; }
expect launch_name_contract "$(jqi '.[0].Name')" "/$CN"
expect launch_labels "$(jqi '.[0].Config.Labels | [."org.bfia.managed", ."org.bfia.job", ."org.bfia.task", ."org.bfia.role", ."org.bfia.node", ."org.bfia.attempt"] | join(",")')" "true,$J,$TID,guest,$A,0"
expect launch_by_digest "$(jqi '.[0].Image')" "$digest"
expect launch_memory_limit "$(jqi '.[0].HostConfig.Memory')" $((64 * 1024 * 1024))
expect launch_no_swap "$(jqi '.[0].HostConfig.MemorySwap')" $((64 * 1024 * 1024))
expect launch_cpu_limit "$(jqi '.[0].HostConfig.NanoCpus')" 500000000
expect launch_unprivileged "$(jqi '.[0].HostConfig.Privileged')" false
expect launch_caps_dropped "$(jqi '.[0].HostConfig.CapDrop | join(",")')" ALL
expect launch_no_new_privileges "$(jqi '.[0].HostConfig.SecurityOpt | join(",")')" no-new-privileges
expect launch_network_mode "$(jqi '.[0].HostConfig.NetworkMode')" host
expect launch_storage_mounted "$(jqi '.[0].Mounts | map(select(.Destination != "/run/bfia/attest") | .Destination) | join(",")')" "$T_ROOT/ca/data/storage"
expect launch_no_docker_socket "$(jqi '[.[0].Mounts[].Source | select(test("docker.sock"))] | length')" 0
expect launch_env_self_role "$(jqi '.[0].Config.Env[] | select(startswith("config.self_role="))')" "config.self_role=guest.0"
expect launch_env_input "$(jqi '.[0].Config.Env[] | select(startswith("runtime.component.input.data="))')" 'runtime.component.input.data={"name": "guest", "namespace": "demo"}'
expect launch_env_param_int_formatted "$(jqi '.[0].Config.Env[] | select(startswith("runtime.component.parameter.sleep_ms="))')" "runtime.component.parameter.sleep_ms=8000"
expect launch_env_callback "$(jqi '.[0].Config.Env[] | select(startswith("system.callback="))')" "system.callback=http://127.0.0.1:$PA/v1/platform/schedule/task/callback"
expect launch_env_storage "$(jqi '.[0].Config.Env[] | select(startswith("system.storage="))')" "system.storage=file://$T_ROOT/ca/data/storage"
HOSTCN="host-$A-$TID-0"
expect launch_host_unlimited "$(DK inspect -f '{{.HostConfig.Memory}}' "$HOSTCN")" 134217728
# the launch token (attestation.md §2.4-2.7): mounted read-only, bound to
# this job, task, role and index, image digest and container; kid in the JWKS
b64d() { _s=$(printf '%s' "$1" | tr '_-' '/+'); case $((${#_s} % 4)) in 2) _s="$_s==" ;; 3) _s="$_s=" ;; esac; printf '%s' "$_s" | base64 -d 2>/dev/null; }
TOK=$(cat "$(tokdir ca "$CN")/token.jwt" 2>/dev/null)
claims=$(b64d "$(printf '%s' "$TOK" | cut -d. -f2)")
hdr=$(b64d "$(printf '%s' "$TOK" | cut -d. -f1)")
expect token_claims_bound "$(printf '%s' "$claims" | jq -r '[.bfia.job_id, .bfia.task_id, .bfia.self_role, .bfia.image.config_digest, .bfia.container.name, .bfia.container.id, .iss] | join(",")')" "$J,$TID,guest.0,$digest,$CN,$(jqi '.[0].Id'),$A"
printf '%s\n' "$TOK" >"$T_ROOT/token.jwt"
check token_verifies_against_node_jwks "$CTL_BIN" --url "http://127.0.0.1:$PA" token verify "$T_ROOT/token.jwt"
v=$("$CTL_BIN" --url "http://127.0.0.1:$PA" --json token verify "$T_ROOT/token.jwt" | jq -r '.bfia.task_id + " " + .bfia.self_role')
expect token_verify_shows_binding "$v" "$TID guest.0"
printf '%s.%s\n' "$(printf '%s' "$TOK" | cut -d. -f1,2)" "$(printf '%s' "$TOK" | cut -d. -f3 | rev)" >"$T_ROOT/bad.jwt"
"$CTL_BIN" --url "http://127.0.0.1:$PA" token verify "$T_ROOT/bad.jwt" >"$T_ROOT/bad.out" 2>&1
expect token_verify_tampered_exit "$?" 1
jwks=$(curl -s "http://127.0.0.1:$PA/.well-known/jwks.json")
expect token_kid_in_jwks "$(printf '%s' "$jwks" | jq -r --arg k "$(printf '%s' "$hdr" | jq -r .kid)" '[.keys[] | select(.kid == $k)] | length')" 1
expect jwks_two_paths_agree "$(curl -s "http://127.0.0.1:$PA/v1/interconn/attest/jwks")" "$jwks"
expect node_key_recorded "$(psql_db ca -c "SELECT kid FROM t_attest_key WHERE retired_at IS NULL")" "$(printf '%s' "$jwks" | jq -r '.keys[0].kid')"
expect node_key_file_0600 "$(stat -c %a "$T_ROOT/ca/data/keys/node-es256.pem")" 600
expect token_mount_read_only "$(jqi '.[0].Mounts[] | select(.Destination == "/run/bfia/attest") | .RW')" false
expect token_file_env "$(jqi '.[0].Config.Env[] | select(startswith("config.attest.token_file="))')" "config.attest.token_file=/run/bfia/attest/token.jwt"
expect task_socket_env "$(jqi '.[0].Config.Env[] | select(startswith("system.attest="))')" "system.attest=unix:///run/bfia/attest/agent.sock"
# T0 (spec 2.6): minted before create, in the environment, named by a label
# and recorded; it has the container's name but not its id, and is live
T0=$(jqi '.[0].Config.Env[] | select(startswith("config.attest.token=")) | sub("^config.attest.token="; "")')
c0=$(b64d "$(printf '%s' "$T0" | cut -d. -f2)")
expect env_token_t0_without_container_id "$(printf '%s' "$c0" | jq -r '[.bfia.task_id, .bfia.self_role, .bfia.container.name, (.bfia.container.id // "none")] | join(",")')" "$TID,guest.0,$CN,none"
expect env_token_jti_labelled "$(jqi '.[0].Config.Labels."org.bfia.attest.jti"')" "$(printf '%s' "$c0" | jq -r .jti)"
expect env_token_jti_recorded "$(psql_db ca -c "SELECT env_token_id FROM t_task WHERE job_id='$J' AND task_name='hash_ids_0' AND role='guest'")" "$(printf '%s' "$c0" | jq -r .jti)"
printf '%s\n' "$T0" >"$T_ROOT/t0.jwt"
check env_token_verifies_against_node_jwks "$CTL_BIN" --url "http://127.0.0.1:$PA" token verify "$T_ROOT/t0.jwt"
r=$(curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $T0" --data-binary "{\"audience\":\"$A\",\"nonce\":\"t0-challenge-1\"}" "http://127.0.0.1:$PA/v1/platform/attest/token")
expect env_token_accepted_for_exchange "$(code_of "$r")" 0
cb() { curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $1" --data-binary "$2" "http://127.0.0.1:$PA/v1/platform/schedule/task/callback"; }
r=$(cb "$TOK" "{\"task_id\":\"$TID\",\"status\":\"SUCCESS\",\"role\":\"host.0\"}")
expect token_for_other_role_refused "$(code_of "$r")" 5004
r=$(cb "$TOK" "{\"task_id\":\"task_other\",\"status\":\"SUCCESS\",\"role\":\"guest.0\"}")
expect token_of_task_a_as_task_b_refused "$(code_of "$r")" 5004
bad="$(printf '%s' "$TOK" | cut -d. -f1,2).$(printf '%s' "$TOK" | cut -d. -f3 | rev)"
r=$(cb "$bad" "{\"task_id\":\"$TID\",\"status\":\"SUCCESS\",\"role\":\"guest.0\"}")
expect tampered_token_refused "$(code_of "$r")" 5004
case "$(printf '%s' "$r" | jq -r .msg)" in *E_SIG*|*E_B64*) pass tampered_token_message_names_check ;; *) fail tampered_token_message_names_check "$r" ;; esac
none="$(printf '{"alg":"none","typ":"bfia-launch+jwt"}' | base64 -w0 | tr '+/' '-_' | tr -d '=').$(printf '%s' "$TOK" | cut -d. -f2)."
r=$(cb "$none" "{\"task_id\":\"$TID\",\"status\":\"SUCCESS\",\"role\":\"guest.0\"}")
expect alg_none_refused "$(code_of "$r")" 5004
expect refused_tokens_changed_nothing "$(psql_db ca -c "SELECT status FROM t_task WHERE job_id='$J' AND task_name='hash_ids_0' AND role='guest'")" RUNNING
# restart the gateway while the containers run: the right outcome anyway
kill -9 "$(gw_pid ca)"
sleep 0.3
node_start ca $A "$PA" "$R"
gw_ready "$PA" 20
expect restart_while_running_outcome "$(job_wait "$PA" "$J" 60)" success
# a SUCCESS callback with a live token counts at once; the exit code lands
# when the container exits, a moment later
codes() { psql_db ca -c "SELECT string_agg(status || ':' || coalesce(exit_code::text, '-'), ',' ORDER BY role) FROM t_task WHERE job_id='$J' AND task_name='hash_ids_0'"; }
i=0
while [ "$(codes)" != "SUCCESS:0,SUCCESS:0" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect restart_while_running_exit_codes "$(codes)" "SUCCESS:0,SUCCESS:0"
logs=$(api GET "$PA" "/v1/platform/schedule/task/get_log?task_id=$TID&log_level=info&start=0")
check token_revoked_after_exit test ! -e "$(tokdir ca "$CN")/token.jwt"
case "$(printf '%s' "$logs" | jq -r .data.data)" in *"hash_ids"*) pass get_log_serves_real_log ;; *) fail get_log_serves_real_log "$logs" ;; esac
r=$(api GET "$PA" "/v1/platform/schedule/task/get_log?task_id=$TID&log_level=info")
expect get_log_requires_start "$(code_of "$r")" 5001
r=$(api GET "$PA" "/v1/platform/schedule/task/get_log_line?task_id=nope&log_level=info")
expect get_log_line_unknown_task "$(code_of "$r")" 5002

# a container that finishes while the gateway is down gets its real outcome
J2=$(submit "$(one '.config.task_params.common.hash_ids_0.sleep_ms = 1500 | .config.task_params.guest["0"].hash_ids_0.exit_code = 7')")
i=0
while [ "$(DK ps -q --filter "label=org.bfia.job=$J2" | wc -l)" != 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
gw_stop ca
sleep 2.5
expect finished_while_down_containers_exited "$(DK ps -q --filter "label=org.bfia.job=$J2" | wc -l)" 0
# an orphan: a container with our labels (this installation's) that no task
# row knows; and one with the node id but no installation label (made by a
# version before installations were labelled: nobody can tell whose it is)
INST=$(psql_db ca -c "SELECT install_id FROM t_site")
DK rm -f "orphan-$A" "unlabelled-$A" >/dev/null 2>&1 # left by an earlier run on this engine
DK run -d --name "orphan-$A" --label org.bfia.managed=true --label org.bfia.node=$A --label "org.bfia.install=$INST" --label org.bfia.job=ghost bfia-demo:1.0.0 >/dev/null 2>&1
DK create --name "unlabelled-$A" --label org.bfia.managed=true --label org.bfia.node=$A --label org.bfia.job=ghost2 bfia-demo:1.0.0 >/dev/null 2>&1
node_start ca $A "$PA" "$R"
gw_ready "$PA" 20
expect finished_while_down_outcome "$(job_wait "$PA" "$J2" 60)" failed
expect finished_while_down_exit_code "$(psql_db ca -c "SELECT exit_code || '/' || status_channel FROM t_task WHERE job_id='$J2' AND role='guest' AND task_name='hash_ids_0'")" 7/exit_code
expect orphan_removed "$(DK ps -aq --filter "name=orphan-$A" | wc -l)" 0
expect orphan_recorded "$(psql_db ca -c "SELECT count(*) FROM t_event WHERE entity='container' AND entity_id='orphan-$A'")" 1
expect unlabelled_container_left_alone "$(DK ps -aq --filter "name=unlabelled-$A" | wc -l)" 1
check unlabelled_container_logged grep -q "unlabelled container of this node id" "$T_ROOT/ca.log"
DK rm -f "unlabelled-$A" >/dev/null 2>&1

# exit code decides when no callback came; a claimed SUCCESS is held
J3=$(submit "$(one '.config.task_params.common.hash_ids_0.no_callback = true')")
expect no_callback_exit_zero_succeeds "$(job_wait "$PA" "$J3" 60)" success
J4=$(submit "$(one '.config.task_params.host["0"].hash_ids_0.exit_code = 5 | .config.task_params.host["0"].hash_ids_0.no_token = true')")
expect claimed_success_then_exit_5_fails "$(job_wait "$PA" "$J4" 60)" failed
expect claimed_success_row_failed "$(psql_db ca -c "SELECT status || '/' || claimed_status || '/' || exit_code FROM t_task WHERE job_id='$J4' AND role='host' AND task_name='hash_ids_0'")" FAILED/SUCCESS/5

# OOM is detected and reported
J5=$(submit "$(one '.config.task_params.guest["0"].hash_ids_0.alloc_mb = 200 | .config.job_params.guest["0"].resources = {memory_mb: 32}')")
expect oom_job_failed "$(job_wait "$PA" "$J5" 60)" failed
expect oom_detected "$(psql_db ca -c "SELECT oom_killed FROM t_task WHERE job_id='$J5' AND role='guest' AND task_name='hash_ids_0'")" t
case "$(psql_db ca -c "SELECT error_text FROM t_task WHERE job_id='$J5' AND role='guest' AND task_name='hash_ids_0'")" in *"out of memory"*) pass oom_reported ;; *) fail oom_reported "no OOM text" ;; esac

# an image the engine no longer has: FAILED with a clear reason
sh deploy/providers/build.sh "$DOCKER_URL" bfia-gone:1 >/dev/null 2>&1
gone=$(jq -n --slurpfile c deploy/providers/demo/components.json '{name:"gone",device:"docker",version:"1",metadata:{image:"bfia-gone:1"},components_description:($c[0] | map_values(.provider="gone" | .version="1"))}')
expect register_gone "$(code_of "$(api POST "$PA" /v2/provider/register "$gone")")" 0
DK rmi -f bfia-gone:1 >/dev/null 2>&1
J6=$(submit "$(one '.dag.components |= map(.provider = "gone" | .version = "1")')")
expect missing_image_job_failed "$(job_wait "$PA" "$J6" 60)" failed
case "$(psql_db ca -c "SELECT error_text FROM t_task WHERE job_id='$J6' LIMIT 1")" in *"not on the engine"*) pass missing_image_reason ;; *) fail missing_image_reason "$(psql_db ca -c "SELECT error_text FROM t_task WHERE job_id='$J6' LIMIT 1")" ;; esac

# 20 concurrent launches: ten independent components, two roles each
wide=$(one '.dag.components = [range(10) as $i | {name: "h\($i)", componentName: "hash_ids", provider: "bfia-demo", version: "1.0.0", input: [], output: [{type: "dataset", key: "hashed"}]}] | .config.task_params = {common: {}, guest: {"0": ([range(10) as $i | {key: "h\($i)", value: {dataset_id: "demo#guest"}}] | from_entries)}, host: {"0": ([range(10) as $i | {key: "h\($i)", value: {dataset_id: "demo#host"}}] | from_entries)}}')
J7=$(submit "$wide")
expect twenty_concurrent_outcome "$(job_wait "$PA" "$J7" 120)" success
i=0
while [ "$(DK ps -aq --filter "label=org.bfia.job=$J7" | wc -l)" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect twenty_concurrent_rows "$(psql_db ca -c "SELECT count(*) FROM t_task WHERE job_id='$J7' AND status='SUCCESS' AND exit_code=0")" 20
expect twenty_concurrent_token_callbacks_applied "$(psql_db ca -c "SELECT count(*) FROM t_task WHERE job_id='$J7' AND status_channel='callback'")" 20
expect twenty_concurrent_cleaned "$(DK ps -aq --filter "label=org.bfia.job=$J7" | wc -l)" 0

# --- a provider image pulled from a registry at registration -------------------
# Debian's docker-registry on loopback with htpasswd auth (spec docker-engine.md
# 1.3, 4): the image is pushed there, its local tag removed, and registration
# pulls it with X-Registry-Auth.
if command -v docker-registry >/dev/null 2>&1 && command -v htpasswd >/dev/null 2>&1; then
    RP=$(free_port)
    mkdir -p "$T_ROOT/reg/data" "$T_ROOT/dockercfg"
    htpasswd -Bbn bfia s3cret-pw >"$T_ROOT/reg/htpasswd" 2>/dev/null
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\nauth:\n  htpasswd:\n    realm: bfia-test\n    path: %s\n' \
        "$T_ROOT/reg/data" "$RP" "$T_ROOT/reg/htpasswd" >"$T_ROOT/reg/config.yml"
    docker-registry serve "$T_ROOT/reg/config.yml" >"$T_ROOT/reg.log" 2>&1 &
    REGPID=$!
    i=0
    while [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RP/v2/")" != 401 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    REF="127.0.0.1:$RP/bfia/demo:1.0.0"
    export DOCKER_CONFIG="$T_ROOT/dockercfg"
    DK tag bfia-demo:1.0.0 "$REF"
    printf 's3cret-pw' | DK login -u bfia --password-stdin "127.0.0.1:$RP" >/dev/null 2>&1
    DK push "$REF" >"$T_ROOT/push.log" 2>&1
    expect registry_seeded "$?" 0
    DK rmi "$REF" >/dev/null
    unset DOCKER_CONFIG
    regbody() { jq -n --slurpfile c deploy/providers/demo/components.json --arg img "$1" '{
      name: "bfia-pulled", device: "docker", version: "1.0.0", protocol: "bfia",
      metadata: {base_url: "", image: $img}, components_description: $c[0]}'; }
    # ca has no registry credentials: the pull is refused and says why
    r=$(api POST "$PA" /v2/provider/register "$(regbody "$REF")")
    expect pull_without_credentials_refused "$(code_of "$r")" 5002
    case "$(printf '%s' "$r" | jq -r .msg)" in *"pulling it failed"*"auth"*) pass pull_refusal_names_cause ;; *) fail pull_refusal_names_cause "$r" ;; esac
    expect pull_refused_stores_nothing "$(psql_db ca -c "SELECT count(*) FROM t_provider WHERE name='bfia-pulled'")" 0
    # a node with credentials pulls and pins the image it got
    PR=$(free_port)
    new_db cr
    AUTH=$(printf '{"username":"bfia","password":"s3cret-pw","serveraddress":"127.0.0.1:%s"}' "$RP" | base64 -w0 | tr '+/' '-_' | tr -d '=')
    node_start cr $A "$PR" "$R" GW_DOCKER_REGISTRY_AUTH="$AUTH"
    gw_ready "$PR" 20
    GW_NODE_ID=$A GW_DOCKER_REGISTRY_AUTH="$AUTH" "$GW_BIN" -c conf/test.yaml --print-config >"$T_ROOT/pc.out" 2>/dev/null
    expect registry_auth_secret_hidden "$(grep -c "$AUTH" "$T_ROOT/pc.out") $(grep -c 'registry_auth: "\*\*\*"' "$T_ROOT/pc.out")" "0 1"
    r=$(api POST "$PR" /v2/provider/register "$(regbody "$REF")")
    expect pull_with_credentials_registers "$(code_of "$r")" 0
    expect pulled_image_pinned "$(printf '%s' "$r" | jq -r .data.image_digest)" "$digest"
    expect pulled_image_on_engine "$(DK image inspect -f '{{.Id}}' "$REF" 2>/dev/null)" "$digest"
    r=$(api POST "$PR" /v2/provider/register "$(regbody "127.0.0.1:$RP/bfia/none:9")")
    expect pull_unknown_image_refused "$(code_of "$r")" 5002
    case "$(printf '%s' "$r" | jq -r .msg)" in *"bfia/none:9"*"pulling it failed"*) pass pull_unknown_names_image ;; *) fail pull_unknown_names_image "$r" ;; esac
    DEAD=$(free_port)
    r=$(api POST "$PR" /v2/provider/register "$(regbody "127.0.0.1:$DEAD/bfia/demo:1.0.0")")
    case "$(code_of "$r") $(printf '%s' "$r" | jq -r .msg)" in "5002 "*"connection refused"*) pass pull_unreachable_registry_refused ;; *) fail pull_unreachable_registry_refused "$r" ;; esac
    expect pull_failures_store_nothing "$(psql_db cr -c "SELECT count(*) FROM t_provider WHERE image LIKE '%none%' OR image LIKE '%$DEAD%'")" 0
    DK rmi "$REF" >/dev/null 2>&1
    gw_stop cr
    expect cr_exit_clean "$GW_RC" 0
    check cr_sanitizer_clean sanitizer_clean cr
    kill "$REGPID" 2>/dev/null
    wait "$REGPID" 2>/dev/null
else
    fail registry_available "docker-registry or htpasswd missing (make deps installs them)"
fi

gw_stop ca
expect ca_exit_clean "$GW_RC" 0
check ca_sanitizer_clean sanitizer_clean ca

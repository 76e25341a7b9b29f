/*
 * fuzz_dag.c - the job DSL (scheduler/dag.c): a {dag, config} body as a
 * create_all request brings it, parsed and validated, then every derived
 * view the scheduler and the partner side compute from it (roles, parties,
 * task parameters, inputs and outputs) for every node and task.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"
#include "scheduler/dag.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A component description as a provider registers it. */
static cJSON *desc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_init();
    desc = cJSON_Parse("{\"roleList\":[\"guest\",\"host\",\"arbiter\"],"
                       "\"inputData\":[{\"name\":\"train_data\"},{\"name\":\"data_in\"}],"
                       "\"outputData\":[{\"name\":\"train_data\"},{\"name\":\"model\"}]}");
    if (!desc)
        abort();
    return 0;
}

static void views(const struct dag *d)
{
    (void)dag_json(d);
    (void)dag_config(d);
    (void)dag_initiator(d);
    (void)dag_sync_type(d);
    (void)dag_scheduler(d);
    cJSON *parties = dag_parties(d);
    const cJSON *node;
    cJSON_ArrayForEach(node, parties)
    {
        if (!cJSON_IsString(node))
            abort();
        cJSON *roles = dag_local_roles(d, node->valuestring);
        const cJSON *role;
        cJSON_ArrayForEach(role, roles)
        {
            int idx[16];
            int n = dag_role_indexes(d, role->valuestring, node->valuestring, idx, 16);
            for (int t = 0; t < dag_ntasks(d); t++) {
                const struct dag_task *dt = dag_task(d, t);
                if (dag_find(d, dt->name) != t)
                    abort(); /* task names are unique */
                for (int u = 0; u < dt->n_ups; u++)
                    if (dt->ups[u] < 0 || dt->ups[u] >= dag_ntasks(d))
                        abort();
                for (int i = 0; i < n && i < 16; i++) {
                    cJSON *p = dag_task_params(d, t, role->valuestring, idx[i]);
                    cJSON_Delete(p);
                    cJSON *in = NULL, *out = NULL;
                    struct gw_errbuf eb;
                    gw_errbuf_clear(&eb);
                    if (dag_task_io(d, t, desc, role->valuestring, idx[i], "job-1", &in, &out,
                                    &eb) == 0) {
                        cJSON_Delete(in);
                        cJSON_Delete(out);
                    } else if (in || out || !eb.msg[0]) {
                        abort();
                    }
                }
            }
        }
        cJSON_Delete(roles);
    }
    cJSON_Delete(parties);
    cJSON *tn = dag_task_nodes(d, desc);
    cJSON_Delete(tn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    cJSON *body = json_parse((const char *)data, size, &eb);
    if (!body)
        return 0;
    gw_errbuf_clear(&eb);
    struct dag *d = dag_parse(body, &eb);
    if (d) {
        views(d);
        dag_free(d);
    } else if (!eb.msg[0]) {
        abort(); /* a refusal names the field */
    }
    cJSON_Delete(body);
    return 0;
}

/*
 * dag.c - parse and query the BFIA job DSL.  See dag.h.
 */
#include "dag.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"

#define NAME_MAX_LEN 128
#define TASKS_MAX 256
#define PARTIES_MAX 64   /* nodes in config.role, all roles together */
#define ROLES_MAX 16     /* role names in config.role */
#define PARAMS_MAX 256   /* parameters of one component in one params block */

struct dag {
    cJSON *dag;    /* owned copy, normalised */
    cJSON *config; /* owned copy */
    struct dag_task *t;
    int n;
    const char *initiator;
    const char *sync_type;
    const char *scheduler;
};

void dag_free(struct dag *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        free(d->t[i].ups);
    free(d->t);
    cJSON_Delete(d->dag);
    cJSON_Delete(d->config);
    free(d);
}

const cJSON *dag_json(const struct dag *d) { return d->dag; }
const cJSON *dag_config(const struct dag *d) { return d->config; }
const char *dag_initiator(const struct dag *d) { return d->initiator; }
const char *dag_sync_type(const struct dag *d) { return d->sync_type; }
const char *dag_scheduler(const struct dag *d) { return d->scheduler; }
int dag_ntasks(const struct dag *d) { return d->n; }
const struct dag_task *dag_task(const struct dag *d, int i) { return &d->t[i]; }

int dag_find(const struct dag *d, const char *name)
{
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->t[i].name, name) == 0)
            return i;
    return -1;
}

/* A string member that may be spelled two ways (Kuscia's lowerCamel). */
static const cJSON *member2(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (!v && b)
        v = cJSON_GetObjectItemCaseSensitive(o, b);
    return v;
}

static int parse_components(struct dag *d, struct gw_errbuf *eb)
{
    const cJSON *comps = cJSON_GetObjectItemCaseSensitive(d->dag, "components");
    if (!cJSON_IsArray(comps))
        return gw_errf(eb, GW_EINVAL, "dag.components: expected an array, got %s",
                       json_type_name(comps));
    int n = cJSON_GetArraySize(comps);
    if (n == 0)
        return gw_errf(eb, GW_EINVAL, "dag.components: must not be empty");
    if (n > TASKS_MAX)
        return gw_errf(eb, GW_EINVAL, "dag.components: more than %d components", TASKS_MAX);
    d->t = gw_xcalloc((size_t)n, sizeof(*d->t));
    int i = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, comps)
    {
        struct dag_task *t = &d->t[i];
        d->n = i + 1;
        if (!cJSON_IsObject(c))
            return gw_errf(eb, GW_EINVAL, "dag.components[%d]: expected an object", i);
        /* Kuscia shape: code -> provider, module_name -> componentName. */
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(c, "code");
        const cJSON *mod = member2(c, "module_name", "moduleName");
        if (!cJSON_GetObjectItemCaseSensitive(c, "componentName") && cJSON_IsString(mod))
            cJSON_AddStringToObject(c, "componentName", mod->valuestring);
        if (!cJSON_GetObjectItemCaseSensitive(c, "provider") && cJSON_IsString(code))
            cJSON_AddStringToObject(c, "provider", code->valuestring);
        static const char *const keys[] = {"name", "componentName", "provider", "version"};
        const char *vals[4];
        for (int k = 0; k < 4; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, keys[k]);
            if (!cJSON_IsString(v))
                return gw_errf(eb, GW_EINVAL, "dag.components[%d].%s: expected a string, got %s",
                               i, keys[k], json_type_name(v));
            bool ok = k == 0 ? json_is_id(v->valuestring, NAME_MAX_LEN)
                             : (v->valuestring[0] && strlen(v->valuestring) <= NAME_MAX_LEN &&
                                json_is_id(v->valuestring, NAME_MAX_LEN));
            if (!ok)
                return gw_errf(eb, GW_EINVAL,
                               "dag.components[%d].%s: 1..%d characters of [A-Za-z0-9_.:#-] "
                               "expected",
                               i, keys[k], NAME_MAX_LEN);
            vals[k] = v->valuestring;
        }
        if (strchr(vals[0], '.'))
            return gw_errf(eb, GW_EINVAL, "dag.components[%d].name: must not contain '.'", i);
        t->name = vals[0];
        t->component = vals[1];
        t->provider = vals[2];
        t->version = vals[3];
        for (int j = 0; j < i; j++)
            if (strcmp(d->t[j].name, t->name) == 0)
                return gw_errf(eb, GW_EINVAL, "dag.components[%d].name: '%s' is used twice", i,
                               t->name);
        static const char *const io[] = {"input", "output"};
        for (int k = 0; k < 2; k++) {
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c, io[k]);
            if (!arr || cJSON_IsNull(arr)) {
                cJSON_AddItemToObject(c, io[k], cJSON_CreateArray());
                continue;
            }
            if (!cJSON_IsArray(arr))
                return gw_errf(eb, GW_EINVAL, "dag.components[%d].%s: expected an array, got %s", i,
                               io[k], json_type_name(arr));
            int m = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, arr)
            {
                const cJSON *key = cJSON_GetObjectItemCaseSensitive(e, "key");
                if (!cJSON_IsObject(e) || !cJSON_IsString(key) ||
                    !json_is_id(key->valuestring, 2 * NAME_MAX_LEN))
                    return gw_errf(eb, GW_EINVAL,
                                   "dag.components[%d].%s[%d].key: expected an identifier string",
                                   i, io[k], m);
                m++;
            }
        }
        i++;
    }
    /* Edges: input keys "<upstream>.<output>". */
    for (i = 0; i < d->n; i++) {
        const cJSON *c2 = cJSON_GetArrayItem(comps, i);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(c2, "input");
        int m = cJSON_GetArraySize(in);
        d->t[i].ups = gw_xcalloc((size_t)(m ? m : 1), sizeof(int));
        int j = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, in)
        {
            const char *key = cJSON_GetObjectItemCaseSensitive(e, "key")->valuestring;
            const char *dot = strchr(key, '.');
            if (!dot || dot == key || !dot[1])
                return gw_errf(eb, GW_EINVAL,
                               "dag.components[%d].input[%d].key: expected '<component>.<output>'",
                               i, j);
            char up[NAME_MAX_LEN + 1];
            size_t ul = (size_t)(dot - key);
            if (ul > NAME_MAX_LEN)
                return gw_errf(eb, GW_EINVAL, "dag.components[%d].input[%d].key: too long", i, j);
            memcpy(up, key, ul);
            up[ul] = '\0';
            int u = dag_find(d, up);
            if (u < 0)
                return gw_errf(eb, GW_EINVAL,
                               "dag.components[%d].input[%d].key: no component named '%s'", i, j,
                               up);
            if (u == i)
                return gw_errf(eb, GW_EINVAL,
                               "dag.components[%d].input[%d].key: a component cannot read its "
                               "own output",
                               i, j);
            bool dup = false;
            for (int q = 0; q < d->t[i].n_ups; q++)
                dup |= d->t[i].ups[q] == u;
            if (!dup)
                d->t[i].ups[d->t[i].n_ups++] = u;
            j++;
        }
    }
    /* Cycles: Kahn's algorithm. */
    int *indeg = gw_xcalloc((size_t)d->n, sizeof(int)), *queue = gw_xcalloc((size_t)d->n, sizeof(int));
    for (i = 0; i < d->n; i++)
        indeg[i] = d->t[i].n_ups;
    int qh = 0, qt = 0, seen = 0;
    for (i = 0; i < d->n; i++)
        if (indeg[i] == 0)
            queue[qt++] = i;
    while (qh < qt) {
        int u = queue[qh++];
        seen++;
        for (i = 0; i < d->n; i++)
            for (int q = 0; q < d->t[i].n_ups; q++)
                if (d->t[i].ups[q] == u && --indeg[i] == 0)
                    queue[qt++] = i;
    }
    free(indeg);
    free(queue);
    if (seen != d->n)
        return gw_errf(eb, GW_EINVAL, "dag.components: the inputs form a cycle");
    return 0;
}

/* A parameter name becomes part of an environment variable's name
 * (runtime.component.parameter.<name>): '=' or a control character in it
 * would shift every name after it. */
static bool param_name_ok(const char *k)
{
    if (!k || !*k || strlen(k) > NAME_MAX_LEN)
        return false;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '=')
            return false;
    return true;
}

/* The parameters of one params block {component: {name: value}}: every
 * component is one of the DAG, every name is well formed, and there are not
 * too many. */
static int check_params(const struct dag *d, const cJSON *block, const char *where,
                        struct gw_errbuf *eb)
{
    if (!cJSON_IsObject(block))
        return gw_errf(eb, GW_EINVAL, "%s: expected an object of components, got %s", where,
                       json_type_name(block));
    const cJSON *comp;
    cJSON_ArrayForEach(comp, block)
    {
        if (dag_find(d, comp->string) < 0)
            return gw_errf(eb, GW_EINVAL, "%s.%.64s: no component of that name in dag.components",
                           where, comp->string);
        if (!cJSON_IsObject(comp))
            return gw_errf(eb, GW_EINVAL, "%s.%.64s: expected an object of parameters, got %s",
                           where, comp->string, json_type_name(comp));
        int n = 0;
        const cJSON *prm;
        cJSON_ArrayForEach(prm, comp)
        {
            if (!param_name_ok(prm->string))
                return gw_errf(eb, GW_EINVAL,
                               "%s.%.64s: parameter name '%.64s' is empty, too long, or holds "
                               "'=' or a control character",
                               where, comp->string, prm->string);
            if (++n > PARAMS_MAX)
                return gw_errf(eb, GW_EINVAL, "%s.%.64s: more than %d parameters", where,
                               comp->string, PARAMS_MAX);
        }
    }
    return 0;
}

/* One index key of a role block: "0" or "0|1|2", each a 0-based decimal
 * index into the role's list of nodes. */
static int check_index_key(const char *key, int nodes, const char *where, const char *role,
                           struct gw_errbuf *eb)
{
    const char *p = key;
    do {
        size_t n = strcspn(p, "|");
        bool ok = n >= 1 && n <= 4 && (n == 1 || p[0] != '0');
        for (size_t i = 0; ok && i < n; i++)
            ok = p[i] >= '0' && p[i] <= '9';
        if (!ok)
            return gw_errf(eb, GW_EINVAL,
                           "%s.%s.%.32s: expected a 0-based index of config.role.%s (\"0\", or "
                           "\"0|1\")",
                           where, role, key, role);
        if (atoi(p) >= nodes)
            return gw_errf(eb, GW_EINVAL,
                           "%s.%s.%.32s: index %d, but config.role.%s lists %d node(s)", where,
                           role, key, atoi(p), role, nodes);
        p += n;
    } while (*p++ == '|');
    return 0;
}

/* config.job_params / config.task_params: "common", and per role of
 * config.role a map of index keys.  With params, each block holds
 * component parameters (task_params). */
static int check_role_blocks(const struct dag *d, const cJSON *blocks, const char *where,
                             bool params, struct gw_errbuf *eb)
{
    char w[160];
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(d->config, "role");
    const cJSON *b;
    cJSON_ArrayForEach(b, blocks)
    {
        if (strcmp(b->string, "common") == 0) {
            snprintf(w, sizeof(w), "%s.common", where);
            if (params && check_params(d, b, w, eb) != 0)
                return GW_EINVAL;
            continue;
        }
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(roles, b->string);
        /* Kuscia sends every role's block, empty for the roles the job
         * does not have: only a block with content needs its role */
        if (!list && (cJSON_IsNull(b) || (cJSON_IsObject(b) && !b->child)))
            continue;
        if (!list)
            return gw_errf(eb, GW_EINVAL, "%s.%.32s: no such role in config.role", where,
                           b->string);
        if (!cJSON_IsObject(b))
            return gw_errf(eb, GW_EINVAL, "%s.%.32s: expected an object of index keys, got %s",
                           where, b->string, json_type_name(b));
        const cJSON *ix;
        cJSON_ArrayForEach(ix, b)
        {
            if (check_index_key(ix->string, cJSON_GetArraySize(list), where, b->string, eb) != 0)
                return GW_EINVAL;
            snprintf(w, sizeof(w), "%s.%.32s.%.32s", where, b->string, ix->string);
            if (params && check_params(d, ix, w, eb) != 0)
                return GW_EINVAL;
            if (!params && !cJSON_IsObject(ix))
                return gw_errf(eb, GW_EINVAL, "%s: expected an object, got %s", w,
                               json_type_name(ix));
        }
    }
    return 0;
}

static int parse_config(struct dag *d, struct gw_errbuf *eb)
{
    const cJSON *ini = cJSON_GetObjectItemCaseSensitive(d->config, "initiator");
    if (!cJSON_IsObject(ini))
        return gw_errf(eb, GW_EINVAL, "config.initiator: expected an object, got %s",
                       json_type_name(ini));
    const cJSON *node = member2(ini, "node_id", "nodeId");
    if (!cJSON_IsString(node) || !json_is_id(node->valuestring, 64))
        return gw_errf(eb, GW_EINVAL, "config.initiator.node_id: expected a node id");
    d->initiator = node->valuestring;
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(d->config, "role");
    if (!cJSON_IsObject(roles))
        return gw_errf(eb, GW_EINVAL, "config.role: expected an object, got %s",
                       json_type_name(roles));
    int total = 0, nroles = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, roles)
    {
        const char *rn = r->string;
        if (++nroles > ROLES_MAX)
            return gw_errf(eb, GW_EINVAL, "config.role: more than %d roles", ROLES_MAX);
        size_t rl = strlen(rn);
        bool ok = rl >= 1 && rl <= 32 && rn[0] >= 'a' && rn[0] <= 'z';
        for (size_t i = 0; ok && i < rl; i++)
            ok = (rn[i] >= 'a' && rn[i] <= 'z') || (rn[i] >= '0' && rn[i] <= '9') || rn[i] == '_';
        if (!ok)
            return gw_errf(eb, GW_EINVAL, "config.role: invalid role name '%.40s'", rn);
        if (cJSON_IsNull(r))
            continue;
        if (!cJSON_IsArray(r))
            return gw_errf(eb, GW_EINVAL, "config.role.%s: expected an array of node ids, got %s",
                           rn, json_type_name(r));
        int i = 0;
        const cJSON *n;
        cJSON_ArrayForEach(n, r)
        {
            if (!cJSON_IsString(n) || !json_is_id(n->valuestring, 64))
                return gw_errf(eb, GW_EINVAL, "config.role.%s[%d]: expected a node id", rn, i);
            /* one node twice in one role could never run: both would be
             * the same container of the same task */
            const cJSON *m;
            int k = 0;
            cJSON_ArrayForEach(m, r)
            {
                if (k++ == i)
                    break;
                if (strcmp(m->valuestring, n->valuestring) == 0)
                    return gw_errf(eb, GW_EINVAL,
                                   "config.role.%s[%d]: node %s is listed twice for role %s", rn,
                                   i, n->valuestring, rn);
            }
            i++;
            if (++total > PARTIES_MAX)
                return gw_errf(eb, GW_EINVAL, "config.role: more than %d parties", PARTIES_MAX);
        }
    }
    if (total == 0)
        return gw_errf(eb, GW_EINVAL, "config.role: names no node");
    /* the initiator is a party: no node creates jobs between others */
    bool initiator_plays = false;
    cJSON_ArrayForEach(r, roles)
    {
        const cJSON *n;
        cJSON_ArrayForEach(n, r) initiator_plays |= strcmp(n->valuestring, d->initiator) == 0;
    }
    if (!initiator_plays)
        return gw_errf(eb, GW_EINVAL,
                       "config.initiator.node_id: %s plays no role in config.role (the initiator "
                       "is a party of its job)",
                       d->initiator);
    d->sync_type = "poll";
    d->scheduler = NULL;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(d->config, "job_params");
    if (jp && !cJSON_IsObject(jp) && !cJSON_IsNull(jp))
        return gw_errf(eb, GW_EINVAL, "config.job_params: expected an object");
    const cJSON *common = cJSON_GetObjectItemCaseSensitive(jp, "common");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(common, "sync_type");
    if (st) {
        if (!cJSON_IsString(st) ||
            (strcmp(st->valuestring, "poll") && strcmp(st->valuestring, "callback")))
            return gw_errf(eb, GW_EINVAL,
                           "config.job_params.common.sync_type: expected \"poll\" or \"callback\"");
        d->sync_type = st->valuestring;
    }
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(common, "scheduler");
    if (sc && !cJSON_IsNull(sc)) {
        if (!cJSON_IsString(sc) || !json_is_id(sc->valuestring, 64))
            return gw_errf(eb, GW_EINVAL, "config.job_params.common.scheduler: expected a node id");
        d->scheduler = sc->valuestring;
    }
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(d->config, "task_params");
    if (!cJSON_IsObject(tp))
        return gw_errf(eb, GW_EINVAL, "config.task_params: expected an object, got %s",
                       json_type_name(tp));
    if (check_role_blocks(d, jp, "config.job_params", false, eb) != 0 ||
        check_role_blocks(d, tp, "config.task_params", true, eb) != 0)
        return GW_EINVAL;
    return 0;
}

struct dag *dag_parse(const cJSON *body, struct gw_errbuf *eb)
{
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(body, "dag");
    const cJSON *cf = cJSON_GetObjectItemCaseSensitive(body, "config");
    if (!cJSON_IsObject(dg)) {
        gw_errf(eb, GW_EINVAL, "dag: expected an object, got %s", json_type_name(dg));
        return NULL;
    }
    if (!cJSON_IsObject(cf)) {
        gw_errf(eb, GW_EINVAL, "config: expected an object, got %s", json_type_name(cf));
        return NULL;
    }
    struct dag *d = gw_xcalloc(1, sizeof(*d));
    d->dag = cJSON_Duplicate(dg, true);
    d->config = cJSON_Duplicate(cf, true);
    if (parse_components(d, eb) != 0 || parse_config(d, eb) != 0) {
        dag_free(d);
        return NULL;
    }
    return d;
}

cJSON *dag_local_roles(const struct dag *d, const char *node)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(d->config, "role"))
    {
        const cJSON *n;
        cJSON_ArrayForEach(n, r)
        {
            if (cJSON_IsString(n) && strcmp(n->valuestring, node) == 0) {
                cJSON_AddItemToArray(out, cJSON_CreateString(r->string));
                break;
            }
        }
    }
    return out;
}

cJSON *dag_parties(const struct dag *d)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(d->config, "role"))
    {
        const cJSON *n;
        cJSON_ArrayForEach(n, r)
        {
            bool have = false;
            const cJSON *e;
            cJSON_ArrayForEach(e, out) have |= strcmp(e->valuestring, n->valuestring) == 0;
            if (!have)
                cJSON_AddItemToArray(out, cJSON_CreateString(n->valuestring));
        }
    }
    return out;
}

int dag_role_indexes(const struct dag *d, const char *role, const char *node, int *idx, int cap)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d->config,
                                                                                       "role"),
                                                      role);
    int i = 0, k = 0;
    const cJSON *n;
    cJSON_ArrayForEach(n, r)
    {
        if (cJSON_IsString(n) && strcmp(n->valuestring, node) == 0 && k < cap)
            idx[k++] = i;
        i++;
    }
    return k;
}

bool dag_role_runs(const cJSON *desc, const char *role)
{
    const cJSON *rl = cJSON_GetObjectItemCaseSensitive(desc, "roleList");
    if (cJSON_IsString(rl))
        return strcmp(rl->valuestring, role) == 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, rl) if (cJSON_IsString(e) && strcmp(e->valuestring, role) == 0) return true;
    return false;
}

cJSON *dag_task_nodes(const struct dag *d, const cJSON *desc)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(d->config, "role"))
    {
        if (cJSON_IsArray(r) && cJSON_GetArraySize(r) > 0 && dag_role_runs(desc, r->string))
            cJSON_AddItemToObject(out, r->string, cJSON_Duplicate(r, true));
    }
    return out;
}

const cJSON *dag_index_entry(const cJSON *map, int idx)
{
    char want[12];
    snprintf(want, sizeof(want), "%d", idx);
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!e->string)
            continue;
        /* "0", or "0|1|2" */
        const char *p = e->string;
        while (*p) {
            size_t n = strcspn(p, "|");
            if (n == strlen(want) && strncmp(p, want, n) == 0)
                return e;
            p += n;
            if (*p == '|')
                p++;
        }
    }
    return NULL;
}

static bool is_dataset_key(const char *k)
{
    return strcmp(k, "dataset_id") == 0 || strcmp(k, "name") == 0 || strcmp(k, "namespace") == 0;
}

cJSON *dag_task_params(const struct dag *d, int ti, const char *role, int idx)
{
    const char *name = d->t[ti].name;
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(d->config, "task_params");
    cJSON *out = cJSON_CreateObject();
    const cJSON *common =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tp, "common"), name);
    const cJSON *mine = cJSON_GetObjectItemCaseSensitive(
        dag_index_entry(cJSON_GetObjectItemCaseSensitive(tp, role), idx), name);
    const cJSON *srcs[2] = {common, mine};
    for (int s = 0; s < 2; s++) {
        const cJSON *e;
        cJSON_ArrayForEach(e, srcs[s])
        {
            if (!e->string || (s == 1 && is_dataset_key(e->string)) ||
                strcmp(e->string, "dataset_id") == 0)
                continue;
            cJSON_DeleteItemFromObjectCaseSensitive(out, e->string);
            cJSON_AddItemToObject(out, e->string, cJSON_Duplicate(e, true));
        }
    }
    return out;
}

static cJSON *address(const char *ns, const char *name)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "name", name);
    cJSON_AddStringToObject(a, "namespace", ns);
    return a;
}

static const char *data_name(const cJSON *desc, const char *list, int j)
{
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(desc, list), j);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
    return cJSON_IsString(n) ? n->valuestring : NULL;
}

static int task_io(const struct dag *d, int ti, const cJSON *desc, const char *role, int idx,
                   const char *job_id, cJSON **in, cJSON **out, struct gw_errbuf *eb);

int dag_task_io(const struct dag *d, int ti, const cJSON *desc, const char *role, int idx,
                const char *job_id, cJSON **in, cJSON **out, struct gw_errbuf *eb)
{
    int rc = task_io(d, ti, desc, role, idx, job_id, in, out, eb);
    if (rc != 0) {
        cJSON_Delete(*in);
        cJSON_Delete(*out);
        *in = *out = NULL;
    }
    return rc;
}

static int task_io(const struct dag *d, int ti, const cJSON *desc, const char *role, int idx,
                   const char *job_id, cJSON **in, cJSON **out, struct gw_errbuf *eb)
{
    const cJSON *comp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d->dag, "components"), ti);
    const char *name = d->t[ti].name;
    *in = cJSON_CreateObject();
    *out = cJSON_CreateObject();
    char buf[600];
    int j = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(comp, "output"))
    {
        const char *dn = data_name(desc, "outputData", j);
        const char *key = cJSON_GetObjectItemCaseSensitive(e, "key")->valuestring;
        snprintf(buf, sizeof(buf), "%s.%s.%s.%d", name, key, role, idx);
        cJSON_AddItemToObject(*out, dn ? dn : key, address(job_id, buf));
        j++;
    }
    j = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(comp, "input"))
    {
        const char *dn = data_name(desc, "inputData", j);
        const char *key = cJSON_GetObjectItemCaseSensitive(e, "key")->valuestring;
        snprintf(buf, sizeof(buf), "%s.%s.%d", key, role, idx);
        cJSON_AddItemToObject(*in, dn ? dn : key, address(job_id, buf));
        j++;
    }
    if (j == 0) {
        /* The first task reads the dataset of task_params.<role>.<idx>.<name>. */
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(d->config, "task_params");
        const cJSON *mine = cJSON_GetObjectItemCaseSensitive(
            dag_index_entry(cJSON_GetObjectItemCaseSensitive(tp, role), idx), name);
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive(mine, "dataset_id");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(mine, "name");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(mine, "namespace");
        const char *dn = data_name(desc, "inputData", 0);
        if (ds && !cJSON_IsString(ds))
            return gw_errf(eb, GW_EINVAL,
                           "config.task_params.%s.%d.%s.dataset_id: expected a string, got %s", role,
                           idx, name, json_type_name(ds));
        if (cJSON_IsString(ds)) {
            const char *hash = strchr(ds->valuestring, '#');
            if (!hash || hash == ds->valuestring || !hash[1] || strchr(hash + 1, '#'))
                return gw_errf(eb, GW_EINVAL,
                               "config.task_params.%s.%d.%s.dataset_id: expected "
                               "\"<namespace>#<name>\"",
                               role, idx, name);
            char nsb[256];
            snprintf(nsb, sizeof(nsb), "%.*s", (int)(hash - ds->valuestring), ds->valuestring);
            if (!json_is_id(nsb, 128) || !json_is_id(hash + 1, 128) || strchr(hash + 1, '/'))
                return gw_errf(eb, GW_EINVAL,
                               "config.task_params.%s.%d.%s.dataset_id: namespace and name must be "
                               "identifiers",
                               role, idx, name);
            if (dn)
                cJSON_AddItemToObject(*in, dn, address(nsb, hash + 1));
        } else if (cJSON_IsString(nm) && cJSON_IsString(ns)) {
            if (!json_is_id(nm->valuestring, 128) || !json_is_id(ns->valuestring, 128))
                return gw_errf(eb, GW_EINVAL,
                               "config.task_params.%s.%d.%s: namespace and name must be "
                               "identifiers",
                               role, idx, name);
            if (dn)
                cJSON_AddItemToObject(*in, dn, address(ns->valuestring, nm->valuestring));
        }
    }
    return 0;
}

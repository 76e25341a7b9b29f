/*
 * provider.c - provider images and their BFIA component descriptions.
 *
 *   POST /v2/provider/register                    FATE-Flow's body (spec §7.3)
 *   POST /v1/platform/schedule/component/register the standard's {imageUrl, component_info}
 *   GET|POST /v2/provider/query                   {name?, version?}
 *   POST /v2/provider/delete                      {name, version}
 *
 * The image is resolved on the engine and its id stored as the pinned
 * digest: tasks launch by that digest, so retagging the image later cannot
 * change what runs.  Descriptions are validated leniently (spec §7.1: the
 * official examples write booleans as strings and groupTag as a string)
 * and stored normalised.  Components are keyed by (provider, version,
 * componentName), so two vendors' components with one name never collide.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/docker.h"
#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "route.h"

#define COMPONENTS_MAX 512

static bool name_ok(const char *s, bool version)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || (version && c == '+')))
            return false;
    }
    return true;
}

/* "true"/"false" strings and real booleans. */
static int lenient_bool(cJSON *o, const char *key, const char *where, struct gw_errbuf *eb)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsBool(v))
        return 0;
    if (cJSON_IsString(v) &&
        (strcmp(v->valuestring, "true") == 0 || strcmp(v->valuestring, "false") == 0)) {
        bool b = strcmp(v->valuestring, "true") == 0;
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateBool(b));
        return 0;
    }
    return gw_errf(eb, GW_EINVAL, "%s.%s: expected a boolean (or \"true\"/\"false\")", where, key);
}

/* A string where an array of strings is declared becomes a one-element
 * array ("" becomes []). */
static int lenient_str_array(cJSON *o, const char *key, bool required, const char *where,
                             struct gw_errbuf *eb)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return gw_errf(eb, GW_EINVAL, "%s.%s: required", where, key);
        return 0;
    }
    if (cJSON_IsString(v)) {
        cJSON *a = cJSON_CreateArray();
        if (v->valuestring[0])
            cJSON_AddItemToArray(a, cJSON_CreateString(v->valuestring));
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, a);
        v = a;
    }
    if (!cJSON_IsArray(v))
        return gw_errf(eb, GW_EINVAL, "%s.%s: expected an array of strings, got %s", where, key,
                       json_type_name(v));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            return gw_errf(eb, GW_EINVAL, "%s.%s[%d]: expected a string", where, key, i);
        i++;
    }
    if (required && i == 0)
        return gw_errf(eb, GW_EINVAL, "%s.%s: must not be empty", where, key);
    return 0;
}

static int need_str(const cJSON *o, const char *key, const char *where, struct gw_errbuf *eb)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return gw_errf(eb, GW_EINVAL, "%s.%s: expected a non-empty string, got %s", where, key,
                       v ? json_type_name(v) : "nothing");
    if (strlen(v->valuestring) > 4096)
        return gw_errf(eb, GW_EINVAL, "%s.%s: longer than 4096 characters", where, key);
    return 0;
}

static int check_data_list(cJSON *desc, const char *key, const char *where, struct gw_errbuf *eb)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(desc, key);
    if (!arr || cJSON_IsNull(arr)) {
        cJSON_DeleteItemFromObjectCaseSensitive(desc, key);
        cJSON_AddItemToObject(desc, key, cJSON_CreateArray());
        return 0;
    }
    if (!cJSON_IsArray(arr))
        return gw_errf(eb, GW_EINVAL, "%s.%s: expected an array, got %s", where, key,
                       json_type_name(arr));
    int i = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char w[256];
        snprintf(w, sizeof(w), "%s.%s[%d]", where, key, i);
        if (!cJSON_IsObject(e))
            return gw_errf(eb, GW_EINVAL, "%s: expected an object", w);
        int rc = need_str(e, "name", w, eb);
        if (rc)
            return rc;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (!json_is_id(nm->valuestring, 128))
            return gw_errf(eb, GW_EINVAL, "%s.name: expected an identifier", w);
        if ((rc = need_str(e, "category", w, eb)) ||
            (rc = lenient_str_array(e, "dataFormat", false, w, eb)))
            return rc;
        i++;
    }
    return 0;
}

/* Validate one description in place (normalising the lenient spellings). */
static int check_desc(cJSON *desc, const char *where, struct gw_errbuf *eb)
{
    if (!cJSON_IsObject(desc))
        return gw_errf(eb, GW_EINVAL, "%s: expected an object", where);
    int rc;
    if ((rc = need_str(desc, "componentName", where, eb)) || (rc = need_str(desc, "title", where, eb)) ||
        (rc = need_str(desc, "provider", where, eb)) || (rc = need_str(desc, "version", where, eb)) ||
        (rc = lenient_str_array(desc, "roleList", true, where, eb)) ||
        (rc = lenient_str_array(desc, "storageEngine", false, where, eb)))
        return rc;
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(desc, "componentName");
    if (!json_is_id(cn->valuestring, 128) || strchr(cn->valuestring, ':') ||
        strchr(cn->valuestring, '#'))
        return gw_errf(eb, GW_EINVAL, "%s.componentName: letters, digits, '_', '.', '-' only",
                       where);
    const cJSON *r;
    int ri = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(desc, "roleList"))
    {
        const char *s = r->valuestring;
        bool ok = s[0] >= 'a' && s[0] <= 'z' && strlen(s) <= 32;
        for (const char *c = s; ok && *c; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (!ok)
            return gw_errf(eb, GW_EINVAL, "%s.roleList[%d]: invalid role name", where, ri);
        ri++;
    }
    cJSON *ip = cJSON_GetObjectItemCaseSensitive(desc, "inputParam");
    if (ip && !cJSON_IsNull(ip)) {
        if (!cJSON_IsArray(ip))
            return gw_errf(eb, GW_EINVAL, "%s.inputParam: expected an array, got %s", where,
                           json_type_name(ip));
        int i = 0;
        cJSON *p;
        cJSON_ArrayForEach(p, ip)
        {
            char w[256];
            snprintf(w, sizeof(w), "%s.inputParam[%d]", where, i);
            if (!cJSON_IsObject(p))
                return gw_errf(eb, GW_EINVAL, "%s: expected an object", w);
            if ((rc = need_str(p, "name", w, eb)) || (rc = lenient_bool(p, "optional", w, eb)) ||
                (rc = lenient_str_array(p, "groupTag", false, w, eb)) ||
                (rc = lenient_str_array(p, "dependsOn", false, w, eb)))
                return rc;
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type");
            if (t && !cJSON_IsString(t))
                return gw_errf(eb, GW_EINVAL, "%s.type: expected a string", w);
            i++;
        }
    }
    if ((rc = check_data_list(desc, "inputData", where, eb)) ||
        (rc = check_data_list(desc, "outputData", where, eb)))
        return rc;
    return 0;
}

/* ---- register ------------------------------------------------------------------- */

struct reg {
    struct gw_req *req;
    char *name, *version, *image;
    cJSON *metadata;
    cJSON *comps;  /* array of normalised descriptions */
    bool replace;  /* FATE-Flow register: the component set is replaced */
    bool pulled;   /* the image was pulled once already */
};

static void reg_free(void *p)
{
    struct reg *r = p;
    free(r->name);
    free(r->version);
    free(r->image);
    cJSON_Delete(r->metadata);
    cJSON_Delete(r->comps);
    free(r);
}

static void on_reg_written(void *arg, int err, const struct db_res *res, const char *errmsg,
                           const char *sqlstate)
{
    (void)sqlstate;
    struct reg *r = arg;
    struct gw_req *req = r->req;
    if (err) {
        route_reply_err(req, err, errmsg);
        return;
    }
    bool created = strcmp(db_res_get(res, 0, 0), "t") == 0;
    cJSON *data = cJSON_CreateObject();
    json_add_str(data, "name", r->name);
    json_add_str(data, "version", r->version);
    json_add_str(data, "image", r->image);
    json_add_str(data, "image_digest", db_res_get(res, 0, 1));
    cJSON *names = cJSON_AddArrayToObject(data, "components");
    const cJSON *c;
    cJSON_ArrayForEach(c, r->comps)
        cJSON_AddItemToArray(names, cJSON_CreateString(
                                        cJSON_GetObjectItemCaseSensitive(c, "componentName")->valuestring));
    log_kv(LOG_LEVEL_INFO, &req->log, "provider.register", created ? "provider created" : "provider updated",
           "name", r->name, "version", r->version, "digest", db_res_get(res, 0, 1), NULL);
    route_reply(req, ROUTE_CODE_OK, created ? "create success" : "update success", data);
}

static void on_image(void *arg, const struct docker_result *dr);

/* The image was missing: pulled (docker.pull), now resolve it again. */
static void on_pulled(void *arg, const struct docker_result *dr)
{
    struct reg *r = arg;
    struct gw_req *req = r->req;
    if (dr->err) {
        char *m = gw_xasprintf("metadata.image: image %s is not on this node's Docker engine "
                               "and pulling it failed: %s",
                               r->image, dr->msg);
        log_kv(LOG_LEVEL_WARN, &req->log, "provider.pull", "image pull failed", "image", r->image,
               "err", dr->msg, NULL);
        route_reply_err(req, GW_ENOTFOUND, m);
        free(m);
        return;
    }
    log_kv(LOG_LEVEL_INFO, &req->log, "provider.pull", "image pulled", "image", r->image, NULL);
    if (docker_image_inspect(req->app->docker, r->image, on_image, r) != 0)
        route_reply_err(req, GW_EDOCKER, "metadata.image: cannot ask the engine for the image");
}

static void on_image(void *arg, const struct docker_result *dr)
{
    struct reg *r = arg;
    struct gw_req *req = r->req;
    if (dr->err == GW_ENOTFOUND && !r->pulled && req->app->cfg->docker_pull &&
        docker_image_pull(req->app->docker, r->image, on_pulled, r) == 0) {
        r->pulled = true;
        return;
    }
    if (dr->err == GW_ENOTFOUND) {
        char *m = gw_xasprintf("metadata.image: image %s is not on this node's Docker engine "
                               "(load or pull it first): %s",
                               r->image, dr->msg);
        route_reply_err(req, GW_ENOTFOUND, m);
        free(m);
        return;
    }
    if (dr->err) {
        char *m = gw_xasprintf("metadata.image: the Docker engine could not resolve %s: %s",
                               r->image, dr->msg);
        route_reply_err(req, GW_EDOCKER, m);
        free(m);
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(dr->json, "Id");
    if (!cJSON_IsString(id) || strncmp(id->valuestring, "sha256:", 7) != 0 ||
        strlen(id->valuestring) != 71) {
        route_reply_err(req, GW_EDOCKER, "metadata.image: the engine returned no image id");
        return;
    }
    static const char sql[] =
        "WITH p AS (INSERT INTO t_provider (name, version, device, protocol, image, image_digest,"
        "  metadata) VALUES ($1, $2, 'docker', 'bfia', $3, $4, $5::jsonb)"
        "  ON CONFLICT (name, version, device) DO UPDATE SET image = EXCLUDED.image,"
        "  image_digest = EXCLUDED.image_digest, metadata = EXCLUDED.metadata, updated_at = now()"
        "  RETURNING (xmax = 0) AS created, image_digest)"
        ", c AS (SELECT x->>'componentName' AS cn, x AS d, x->'roleList' AS rl"
        "  FROM jsonb_array_elements($6::jsonb) x)"
        ", del AS (DELETE FROM t_component WHERE provider = $1 AND version = $2 AND device = 'docker'"
        "  AND $7::boolean AND component_name NOT IN (SELECT cn FROM c))"
        ", ins AS (INSERT INTO t_component (provider, version, device, component_name, description,"
        "  role_list) SELECT $1, $2, 'docker', cn, d, rl FROM c, p"
        "  ON CONFLICT (provider, version, device, component_name) DO UPDATE SET"
        "  description = EXCLUDED.description, role_list = EXCLUDED.role_list, updated_at = now()"
        "  RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'provider', $1 || ':' || $2 || '@docker', CASE WHEN created THEN 'created'"
        "  ELSE 'updated' END, 'api', 'image ' || $3 || ' pinned at ' || $4 FROM p)"
        " SELECT created, image_digest, (SELECT count(*) FROM ins) FROM p";
    char *mj = json_print(r->metadata), *cj = json_print(r->comps);
    const char *p[7] = {r->name, r->version, r->image, id->valuestring, mj, cj,
                        r->replace ? "true" : "false"};
    int rc = db_query(req->app->db, sql, 7, p, on_reg_written, r, NULL);
    cJSON_free(mj);
    cJSON_free(cj);
    if (rc != 0)
        route_reply_err(req, rc, "database unavailable");
}

static void resolve_and_store(struct reg *r)
{
    struct gw_req *req = r->req;
    if (docker_image_inspect(req->app->docker, r->image, on_image, r) != 0)
        route_reply_err(req, GW_EINVAL, "metadata.image: not a valid image reference");
}

static bool image_ref_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 512)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || c == ':' || c == '/' || c == '@'))
            return false;
    }
    return s[0] != '-' && s[0] != '.' && s[0] != '/';
}

void provider_register(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *name = NULL, *version = NULL, *device = NULL, *protocol = "bfia", *image = NULL;
    const cJSON *meta = NULL, *descs = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_str(req->params, "name", true, 64, &name, &eb) != 0 ||
        json_get_str(req->params, "version", true, 64, &version, &eb) != 0 ||
        json_get_str(req->params, "device", true, 32, &device, &eb) != 0 ||
        json_get_str(req->params, "protocol", false, 32, &protocol, &eb) != 0 ||
        json_get_obj(req->params, "metadata", true, &meta, &eb) != 0 ||
        json_get_str(meta, "image", true, 512, &image, &eb) != 0 ||
        json_get_obj(req->params, "components_description", false, &descs, &eb) != 0) {
        if (strncmp(eb.msg, "field 'image'", 13) == 0) {
            char m[sizeof(eb.msg) + 16];
            snprintf(m, sizeof(m), "metadata.%s", eb.msg);
            route_reply_err(req, GW_EINVAL, m);
        } else {
            route_reply_err(req, GW_EINVAL, eb.msg);
        }
        return;
    }
    if (!name_ok(name, false)) {
        route_reply_err(req, GW_EINVAL, "name: 1..64 of [A-Za-z0-9_.-], starting alphanumeric");
        return;
    }
    if (!name_ok(version, true)) {
        route_reply_err(req, GW_EINVAL, "version: 1..64 of [A-Za-z0-9_.+-], starting alphanumeric");
        return;
    }
    if (strcmp(device, "docker") != 0) {
        route_reply_err(req, GW_EINVAL, "device: only \"docker\" can run BFIA components");
        return;
    }
    if (strcmp(protocol, "bfia") != 0) {
        route_reply_err(req, GW_EINVAL, "protocol: only \"bfia\" is supported");
        return;
    }
    if (!image_ref_ok(image)) {
        route_reply_err(req, GW_EINVAL, "metadata.image: not a valid image reference");
        return;
    }
    cJSON *comps = cJSON_CreateArray();
    int n = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, descs)
    {
        char where[200];
        snprintf(where, sizeof(where), "components_description.%.64s", d->string);
        cJSON *c = cJSON_Duplicate(d, true);
        cJSON_AddItemToArray(comps, c);
        if (++n > COMPONENTS_MAX) {
            route_reply_err(req, GW_EINVAL, "components_description: too many components");
            cJSON_Delete(comps);
            return;
        }
        if (check_desc(c, where, &eb) != 0) {
            route_reply_err(req, GW_EINVAL, eb.msg);
            cJSON_Delete(comps);
            return;
        }
        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "componentName")->valuestring, d->string) != 0) {
            char *m = gw_xasprintf("%s.componentName: must equal its key '%.64s'", where, d->string);
            route_reply_err(req, GW_EINVAL, m);
            free(m);
            cJSON_Delete(comps);
            return;
        }
    }
    struct reg *r = gw_xcalloc(1, sizeof(*r));
    r->req = req;
    r->name = gw_xstrdup(name);
    r->version = gw_xstrdup(version);
    r->image = gw_xstrdup(image);
    r->metadata = cJSON_Duplicate(meta, true);
    r->comps = comps;
    r->replace = true;
    req->ctx = r;
    req->ctx_free = reg_free;
    resolve_and_store(r);
}

/* The standard's POST /v1/platform/schedule/component/register. */
void provider_component_register(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *image = NULL;
    const cJSON *info = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_str(req->params, "imageUrl", true, 512, &image, &eb) != 0 ||
        json_get_obj(req->params, "component_info", true, &info, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (!image_ref_ok(image)) {
        route_reply_err(req, GW_EINVAL, "imageUrl: not a valid image reference");
        return;
    }
    cJSON *c = cJSON_Duplicate(info, true);
    if (check_desc(c, "component_info", &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        cJSON_Delete(c);
        return;
    }
    const char *prov = cJSON_GetObjectItemCaseSensitive(c, "provider")->valuestring;
    const char *ver = cJSON_GetObjectItemCaseSensitive(c, "version")->valuestring;
    if (!name_ok(prov, false) || !name_ok(ver, true)) {
        route_reply_err(req, GW_EINVAL,
                        "component_info.provider/version: 1..64 of [A-Za-z0-9_.+-]");
        cJSON_Delete(c);
        return;
    }
    struct reg *r = gw_xcalloc(1, sizeof(*r));
    r->req = req;
    r->name = gw_xstrdup(prov);
    r->version = gw_xstrdup(ver);
    r->image = gw_xstrdup(image);
    r->metadata = cJSON_CreateObject();
    cJSON_AddStringToObject(r->metadata, "image", image);
    r->comps = cJSON_CreateArray();
    cJSON_AddItemToArray(r->comps, c);
    r->replace = false;
    req->ctx = r;
    req->ctx_free = reg_free;
    resolve_and_store(r);
}

/* ---- query / delete ----------------------------------------------------------------- */

static void on_query(void *arg, int err, const struct db_res *res, const char *errmsg,
                     const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (err) {
        route_reply_err(req, err, errmsg);
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON *arr = cJSON_Parse(db_res_get(res, 0, 0) ? db_res_get(res, 0, 0) : "[]");
    cJSON_AddItemToObject(data, "providers", arr ? arr : cJSON_CreateArray());
    route_reply_ok(req, data);
}

void provider_query(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *name = NULL, *version = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_str(req->params, "name", false, 64, &name, &eb) != 0 ||
        json_get_str(req->params, "version", false, 64, &version, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object('name', p.name, 'version', p.version,"
        " 'device', p.device, 'image', p.image, 'image_digest', p.image_digest,"
        " 'components', coalesce((SELECT json_object_agg(c.component_name, c.description)"
        "   FROM t_component c WHERE c.provider = p.name AND c.version = p.version"
        "   AND c.device = p.device), '{}')) ORDER BY p.name, p.version), '[]')::text"
        " FROM t_provider p WHERE ($1::text IS NULL OR p.name = $1)"
        " AND ($2::text IS NULL OR p.version = $2)";
    const char *p[2] = {name, version};
    int rc = db_query(req->app->db, sql, 2, p, on_query, req, NULL);
    if (rc)
        route_reply_err(req, rc, "database unavailable");
}

static void on_deleted(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (err) {
        route_reply_err(req, err, errmsg);
        return;
    }
    if (atoll(db_res_get(res, 0, 0)) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "name/version: no such provider");
        return;
    }
    route_reply_ok(req, NULL);
}

void provider_delete(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *name = NULL, *version = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_str(req->params, "name", true, 64, &name, &eb) != 0 ||
        json_get_str(req->params, "version", true, 64, &version, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] =
        "WITH d AS (DELETE FROM t_provider WHERE name = $1 AND version = $2 RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'provider', $1 || ':' || $2 || '@docker', 'deleted', 'api', 'provider/delete'"
        "  FROM d)"
        " SELECT count(*) FROM d";
    const char *p[2] = {name, version};
    int rc = db_query(req->app->db, sql, 2, p, on_deleted, req, NULL);
    if (rc)
        route_reply_err(req, rc, "database unavailable");
}

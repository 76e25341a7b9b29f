/*
 * peer.c - route table cache, routes file loading, calls to peer nodes.
 */
#include "peer.h"
#include "reqsig.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <yaml.h>

#include "app.h"
#include "cfg.h"
#include "db.h"
#include "httpc.h"
#include "json.h"
#include "log.h"

struct pcall;

struct peers {
    struct gw_app *app;
    struct peer_route *r;
    size_t n;
    struct pcall *calls; /* in flight: freed at exit if never answered */
};

static void pcall_free(struct pcall *pc);

const char *peer_profile_name(enum peer_profile pr)
{
    switch (pr) {
    case PEER_FATE_FLOW: return "fate-flow";
    case PEER_KUSCIA: return "kuscia";
    default: return "standard";
    }
}

static enum peer_profile profile_parse(const char *s)
{
    if (s && strcmp(s, "fate-flow") == 0)
        return PEER_FATE_FLOW;
    if (s && strcmp(s, "kuscia") == 0)
        return PEER_KUSCIA;
    return PEER_STANDARD;
}

static void routes_clear(struct peers *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->r[i].node_id);
        free(p->r[i].host);
        free(p->r[i].scheme);
        free(p->r[i].auth);
        free(p->r[i].key_pin);
    }
    free(p->r);
    p->r = NULL;
    p->n = 0;
}

struct peers *peers_new(struct gw_app *app)
{
    struct peers *p = gw_xcalloc(1, sizeof(*p));
    p->app = app;
    return p;
}

void peers_free(struct peers *p)
{
    if (!p)
        return;
    /* The HTTP client is gone: these callbacks will never run. */
    while (p->calls)
        pcall_free(p->calls);
    routes_clear(p);
    free(p);
}

const struct peer_route *peers_find(const struct peers *p, const char *node)
{
    if (!p || !node)
        return NULL;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->r[i].node_id, node) == 0)
            return &p->r[i];
    return NULL;
}

/* Both addresses in IPv6 form (IPv4 mapped), or false if addr is not one. */
static bool as_in6(const char *addr, struct in6_addr *out)
{
    struct in_addr v4;
    if (inet_pton(AF_INET6, addr, out) == 1)
        return true;
    if (inet_pton(AF_INET, addr, &v4) != 1)
        return false;
    memset(out, 0, sizeof(*out));
    out->s6_addr[10] = 0xff;
    out->s6_addr[11] = 0xff;
    memcpy(&out->s6_addr[12], &v4, 4);
    return true;
}

bool peer_route_at(const struct peer_route *r, const char *addr, bool name_ok)
{
    struct in6_addr h, a;
    if (!r || !r->host)
        return false;
    if (!as_in6(r->host, &h))
        return name_ok;
    return addr && as_in6(addr, &a) && memcmp(&h, &a, sizeof(h)) == 0;
}

const struct peer_route *peers_unsigned_at(const struct peers *p, const char *addr)
{
    const struct peer_route *found = NULL;
    for (size_t i = 0; p && addr && i < p->n; i++) {
        const struct peer_route *r = &p->r[i];
        if (strcmp(r->auth, "required") == 0 || !peer_route_at(r, addr, false))
            continue;
        if (found)
            return NULL; /* two nodes at one address: cannot tell which */
        found = r;
    }
    return found;
}

enum peer_profile peers_profile(const struct peers *p, const char *node)
{
    const struct peer_route *r = peers_find(p, node);
    return r ? r->profile : PEER_STANDARD;
}

/* ---- routes file ------------------------------------------------------------ */

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
    (void)d;
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool valid_host(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return false;
    for (const char *c = h; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == ':' || *c == '_'))
            return false;
    return true;
}

cJSON *peers_parse_file(const char *path, struct gw_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        gw_errf(eb, GW_EINVAL, "%s: cannot open the routes file", path);
        return NULL;
    }
    yaml_parser_t ps;
    yaml_document_t doc;
    yaml_parser_initialize(&ps);
    yaml_parser_set_input_file(&ps, f);
    cJSON *out = NULL;
    if (!yaml_parser_load(&ps, &doc)) {
        gw_errf(eb, GW_EINVAL, "%s:%zu: %s", path, ps.problem_mark.line + 1,
                ps.problem ? ps.problem : "malformed YAML");
        yaml_parser_delete(&ps);
        fclose(f);
        return NULL;
    }
    out = cJSON_CreateArray();
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) /* empty file: no routes */
        goto done;
    if (root->type != YAML_MAPPING_NODE) {
        gw_errf(eb, GW_EINVAL, "%s:%zu: expected a mapping of node ids", path,
                root->start_mark.line + 1);
        goto fail;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&doc, pr->value);
        const char *node = scalar(&doc, kn);
        size_t line = kn->start_mark.line + 1;
        if (!node || !json_is_id(node, 64)) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: invalid node id", path, line);
            goto fail;
        }
        if (vn->type != YAML_MAPPING_NODE) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: expected a mapping with host and port", path,
                    line, node);
            goto fail;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(out, o);
        json_add_str(o, "node_id", node);
        const char *host = NULL, *port = NULL, *scheme = "http", *profile = "standard",
                   *auth = NULL, *key = NULL;
        for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top;
             q++) {
            yaml_node_t *k2 = yaml_document_get_node(&doc, q->key);
            yaml_node_t *v2 = yaml_document_get_node(&doc, q->value);
            const char *k = scalar(&doc, k2), *v = scalar(&doc, v2);
            size_t l2 = k2->start_mark.line + 1;
            if (!k || !v) {
                gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: expected scalar key and value", path, l2,
                        node);
                goto fail;
            }
            if (strcmp(k, "host") == 0)
                host = v;
            else if (strcmp(k, "port") == 0)
                port = v;
            else if (strcmp(k, "scheme") == 0)
                scheme = v;
            else if (strcmp(k, "profile") == 0)
                profile = v;
            else if (strcmp(k, "auth") == 0)
                auth = v;
            else if (strcmp(k, "key") == 0)
                key = v;
            else {
                gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: unknown key '%.64s'", path, l2, node, k);
                goto fail;
            }
        }
        char *end = NULL;
        long pn = port ? strtol(port, &end, 10) : 0;
        if (!host || !valid_host(host)) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: host missing or invalid", path, line, node);
            goto fail;
        }
        if (!port || *end || pn < 1 || pn > 65535) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: port must be 1..65535", path, line, node);
            goto fail;
        }
        if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: scheme must be http or https", path, line,
                    node);
            goto fail;
        }
        if (strcmp(profile, "standard") && strcmp(profile, "fate-flow") &&
            strcmp(profile, "kuscia")) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: profile must be standard, fate-flow or kuscia",
                    path, line, node);
            goto fail;
        }
        /* Signed requests are required between our gateways; FATE-Flow and
         * Kuscia send none. */
        if (!auth)
            auth = strcmp(profile, "standard") == 0 ? "required" : "off";
        if (strcmp(auth, "required") && strcmp(auth, "optional") && strcmp(auth, "off")) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: auth must be required, optional or off", path,
                    line, node);
            goto fail;
        }
        struct gw_errbuf keb;
        gw_errbuf_clear(&keb);
        if (key && reqsig_pin_check(key, &keb) != 0) {
            gw_errf(eb, GW_EINVAL, "%s:%zu: node %s: %.200s", path, line, node, keb.msg);
            goto fail;
        }
        json_add_str(o, "host", host);
        json_add_int(o, "port", pn);
        json_add_str(o, "scheme", scheme);
        json_add_str(o, "profile", profile);
        json_add_str(o, "auth", auth);
        if (key)
            json_add_str(o, "key_pin", key);
    }
    goto done;
fail:
    cJSON_Delete(out);
    out = NULL;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
    fclose(f);
    return out;
}

/* ---- cache ------------------------------------------------------------------ */

void peers_set(struct peers *p, const struct db_rows *rows)
{
    routes_clear(p);
    p->n = (size_t)rows->n;
    p->r = gw_xcalloc(p->n ? p->n : 1, sizeof(*p->r));
    for (size_t i = 0; i < p->n; i++) {
        struct peer_route *r = &p->r[i];
        r->node_id = gw_xstrdup(db_rows_get(rows, (int)i, 0));
        r->host = gw_xstrdup(db_rows_get(rows, (int)i, 1));
        r->port = atoi(db_rows_get(rows, (int)i, 2));
        r->scheme = gw_xstrdup(db_rows_get(rows, (int)i, 3));
        r->profile = profile_parse(db_rows_get(rows, (int)i, 4));
        r->auth = gw_xstrdup(db_rows_get(rows, (int)i, 5));
        const char *k = db_rows_get(rows, (int)i, 6);
        r->key_pin = k ? gw_xstrdup(k) : NULL;
    }
    if (p->app->reqsig)
        reqsig_forget(p->app->reqsig);
}

/* ---- calls ------------------------------------------------------------------ */

struct pcall {
    peer_cb cb;
    void *arg;
    char *node;
    enum peer_profile profile;
    struct peers *owner;
    struct pcall *prev, *next;
};

static void pcall_free(struct pcall *pc)
{
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        pc->owner->calls = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    free(pc->node);
    free(pc);
}

static void on_peer_done(void *arg, const struct httpc_resp *hr)
{
    struct pcall *pc = arg;
    struct peer_resp r = {.node = pc->node, .status = hr->status, .code = -1};
    cJSON *root = NULL;
    char msg[512];
    if (hr->err) {
        r.err = hr->err == GW_ETIMEOUT ? GW_ETIMEOUT : GW_EPEER;
        snprintf(msg, sizeof(msg), "node %s unreachable: %s", pc->node, hr->errmsg);
        r.msg = msg;
    } else {
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        root = json_parse(hr->body, hr->body_len, &eb);
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
        if (!cJSON_IsObject(root) || !(cJSON_IsNumber(code) || cJSON_IsString(code))) {
            r.err = GW_EPEER;
            snprintf(msg, sizeof(msg), "node %s answered HTTP %ld without a BFIA envelope",
                     pc->node, hr->status);
            r.msg = msg;
        } else {
            int c = cJSON_IsNumber(code) ? code->valueint : atoi(code->valuestring);
            if (pc->profile == PEER_KUSCIA && c == 200)
                c = 0;
            r.code = c;
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "msg");
            if (!cJSON_IsString(m))
                m = cJSON_GetObjectItemCaseSensitive(root, "message");
            r.msg = cJSON_IsString(m) ? m->valuestring : "";
            r.data = cJSON_GetObjectItemCaseSensitive(root, "data");
            r.root = root;
        }
    }
    pc->cb(pc->arg, &r);
    cJSON_Delete(root);
    pcall_free(pc);
}

static char *query_of(const cJSON *body)
{
    size_t cap = 256, len = 0;
    char *q = gw_xmalloc(cap);
    q[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        if (!cJSON_IsString(it) && !cJSON_IsNumber(it))
            continue;
        char num[32];
        const char *v = it->valuestring;
        if (cJSON_IsNumber(it)) {
            snprintf(num, sizeof(num), "%lld", (long long)it->valuedouble);
            v = num;
        }
        char *ek = curl_easy_escape(NULL, it->string, 0), *ev = curl_easy_escape(NULL, v, 0);
        size_t need = len + strlen(ek) + strlen(ev) + 3;
        if (need > cap) {
            cap = need * 2;
            q = gw_xrealloc(q, cap);
        }
        len += (size_t)snprintf(q + len, cap - len, "%s%s=%s", len ? "&" : "", ek, ev);
        curl_free(ek);
        curl_free(ev);
    }
    return q;
}

bool peers_any_unsigned(const struct peers *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->r[i].auth && strcmp(p->r[i].auth, "required") != 0)
            return true;
    return false;
}

/* Where node is reached: its route, or this node's own listener. */
static int peer_addr(struct gw_app *app, const char *node, const char *path, const char *query,
                     char **url, enum peer_profile *prof)
{
    const struct peer_route *rt = peers_find(app->peers, node);
    char self_host[64];
    const char *scheme = "http", *host;
    int port;
    *prof = PEER_STANDARD;
    if (rt) {
        scheme = rt->scheme;
        host = rt->host;
        port = rt->port;
        *prof = rt->profile;
    } else if (strcmp(node, app->cfg->node_id) == 0) {
        const char *h = app->cfg->http_host;
        snprintf(self_host, sizeof(self_host), "%s",
                 strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ? "127.0.0.1" : h);
        host = self_host;
        port = app->cfg->http_port;
    } else {
        return GW_ENOTFOUND;
    }
    bool v6 = strchr(host, ':') != NULL;
    *url = gw_xasprintf("%s://%s%s%s:%d%s%s%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port,
                        path, query && *query ? "?" : "", query ? query : "");
    return 0;
}

int peer_fetch(struct gw_app *app, const char *node, const char *path, httpc_done_cb done,
               void *arg)
{
    char *url = NULL;
    enum peer_profile prof;
    int rc = peer_addr(app, node, path, NULL, &url, &prof);
    if (rc != 0)
        return rc;
    char h1[128];
    snprintf(h1, sizeof(h1), "x-source-node-id: %s", app->cfg->node_id);
    const char *hdrs[] = {h1, NULL};
    struct httpc_opts o = {
        .method = "GET",
        .url = url,
        .headers = hdrs,
        .timeout_ms = app->cfg->peer_timeout_ms,
        .resp_max = 256 * 1024,
        .retries = 1,
        .backoff_ms = 200,
        .retry_on_5xx = true,
    };
    rc = httpc_send(app->httpc, &o, done, arg, NULL);
    free(url);
    return rc;
}

int peer_call(struct gw_app *app, const char *node, const char *method, const char *path,
              const cJSON *body, int retries, peer_cb cb, void *arg, struct httpc_req **out)
{
    bool get = method && strcmp(method, "GET") == 0;
    char *q = get ? query_of(body) : NULL;
    char *url = NULL;
    enum peer_profile prof;
    int rc = peer_addr(app, node, path, q, &url, &prof);
    if (rc != 0) {
        free(q);
        return rc;
    }
    /* A standard peer gets the query only on GET; a fate-flow peer reads
     * the JSON body even on GET, so it gets both. */
    char *js = body && (!get || prof != PEER_KUSCIA) ? json_print(body) : NULL;
    /* The request-target as sent, for the signature. */
    char *target = gw_xasprintf("%s%s%s", path, q && *q ? "?" : "", q ? q : "");
    free(q);
    struct reqsig_out sg;
    reqsig_outgoing(app, get ? "GET" : "POST", target, node, js, js ? strlen(js) : 0,
                    prof == PEER_STANDARD, prof == PEER_KUSCIA, false, &sg);
    free(target);
    char h1[128], h2[128], h3[128];
    const char *me = app->cfg->node_id;
    snprintf(h1, sizeof(h1), "x-source-node-id: %s", me);
    snprintf(h2, sizeof(h2), "x-node-id: %s", me);
    snprintf(h3, sizeof(h3), "x-target-node-id: %s", node);
    /* Kuscia wants its protocol marker; a signature goes to standard peers. */
    const char *hdrs[] = {"Content-Type: application/json", h1, h2, h3, sg.ts, sg.nonce,
                          prof == PEER_KUSCIA ? "x-interconn-protocol: bfia"
                          : sg.sign[0]        ? sg.sign
                                              : NULL,
                          sg.bmac[0] ? sg.bmac : NULL, NULL};
    struct httpc_opts o = {
        .method = get ? "GET" : "POST",
        .url = url,
        .headers = hdrs,
        .body = js,
        .body_len = js ? strlen(js) : 0,
        .timeout_ms = app->cfg->peer_timeout_ms,
        .resp_max = (size_t)app->cfg->peer_body_max,
        .retries = retries < 0 ? app->cfg->peer_retries : retries,
        .backoff_ms = 200,
        .retry_on_5xx = true,
    };
    struct pcall *pc = gw_xcalloc(1, sizeof(*pc));
    pc->cb = cb;
    pc->arg = arg;
    pc->node = gw_xstrdup(node);
    pc->profile = prof;
    pc->owner = app->peers;
    pc->next = app->peers->calls;
    if (pc->next)
        pc->next->prev = pc;
    app->peers->calls = pc;
    rc = httpc_send(app->httpc, &o, on_peer_done, pc, out);
    free(url);
    if (js)
        cJSON_free(js);
    if (rc != 0)
        pcall_free(pc);
    return rc;
}

int peer_call_raw(struct gw_app *app, const char *node, const char *path_query,
                  const char *const *headers, const void *body, size_t len, bool borrow,
                  bool body_mac, long timeout_ms, int retries, httpc_done_cb done, void *arg,
                  struct httpc_req **out)
{
    char *url = NULL;
    enum peer_profile prof;
    int rc = peer_addr(app, node, path_query, NULL, &url, &prof);
    if (rc != 0)
        return rc;
    struct reqsig_out sg;
    reqsig_outgoing(app, "POST", path_query, node, body, len, prof == PEER_STANDARD,
                    prof == PEER_KUSCIA, body_mac, &sg);
    char h1[128], h2[128], h3[128];
    const char *me = app->cfg->node_id;
    snprintf(h1, sizeof(h1), "x-source-node-id: %s", me);
    snprintf(h2, sizeof(h2), "x-node-id: %s", me);
    snprintf(h3, sizeof(h3), "x-target-node-id: %s", node);
    size_t nh = 0;
    while (headers && headers[nh])
        nh++;
    const char **hdrs = gw_xcalloc(nh + 8, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < nh; i++)
        hdrs[k++] = headers[i];
    hdrs[k++] = h1;
    hdrs[k++] = h2;
    hdrs[k++] = h3;
    hdrs[k++] = sg.ts;
    hdrs[k++] = sg.nonce;
    if (sg.sign[0])
        hdrs[k++] = sg.sign;
    if (sg.bmac[0])
        hdrs[k++] = sg.bmac;
    struct httpc_opts o = {
        .method = "POST",
        .url = url,
        .headers = hdrs,
        .body = body ? body : "",
        .body_len = len,
        .body_borrow = borrow && body,
        .timeout_ms = timeout_ms > 0 ? timeout_ms : app->cfg->peer_timeout_ms,
        .connect_timeout_ms = app->cfg->peer_timeout_ms < 5000 ? app->cfg->peer_timeout_ms : 5000,
        .resp_max = 1 << 20,
        .retries = retries,
        .backoff_ms = 200,
        .retry_on_5xx = true,
        /* which body key it takes (reqsig.h): the caller hands it to
         * reqsig_bmac_learn */
        .capture_header = prof == PEER_STANDARD ? "x-bfia-body-mac-key" : NULL,
    };
    rc = httpc_send(app->httpc, &o, done, arg, out);
    free(hdrs);
    free(url);
    return rc;
}

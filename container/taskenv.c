/* taskenv.c - the container environment, formatted the way FATE-Flow does. */
#include "taskenv.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
    char *p;
    size_t n, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->n + len + 1)
            nc *= 2;
        b->p = gw_xrealloc(b->p, nc);
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Python's float repr: the shortest digits that round-trip, fixed notation
 * for exponents -4..15, else d.ddde+XX with at least two exponent digits. */
static void py_float(struct sbuf *b, double d)
{
    if (isnan(d)) {
        sb_str(b, "NaN");
        return;
    }
    if (isinf(d)) {
        sb_str(b, d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e = [-]D.DDDDe[+-]XX ; split digits and exponent */
    char *ep = strchr(e, 'e');
    int exp10 = atoi(ep + 1);
    *ep = '\0';
    char digits[32];
    size_t nd = 0;
    bool neg = e[0] == '-';
    for (char *p = e; *p; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    if (neg)
        sb_str(b, "-");
    if (exp10 < -4 || exp10 >= 16) {
        sb_add(b, digits, 1);
        if (nd > 1) {
            sb_str(b, ".");
            sb_add(b, digits + 1, nd - 1);
        }
        char x[16];
        snprintf(x, sizeof(x), "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
        sb_str(b, x);
    } else if (exp10 < 0) {
        sb_str(b, "0.");
        for (int i = -1; i > exp10; i--)
            sb_str(b, "0");
        sb_add(b, digits, nd);
    } else {
        size_t intlen = (size_t)exp10 + 1;
        if (nd <= intlen) {
            sb_add(b, digits, nd);
            for (size_t i = nd; i < intlen; i++)
                sb_str(b, "0");
            sb_str(b, ".0");
        } else {
            sb_add(b, digits, intlen);
            sb_str(b, ".");
            sb_add(b, digits + intlen, nd - intlen);
        }
    }
}

/* JSON numbers carry no int/float distinction once parsed; integral values
 * within the exactly-representable range are written as Python ints. */
static void py_number(struct sbuf *b, double d)
{
    if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0) {
        char x[32];
        snprintf(x, sizeof(x), "%.0f", d);
        sb_str(b, x);
    } else {
        py_float(b, d);
    }
}

/* json.dumps string escaping with ensure_ascii=True. */
static void py_json_string(struct sbuf *b, const char *s)
{
    sb_str(b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned int cp;
        size_t n;
        if (*p < 0x80) {
            cp = *p;
            n = 1;
        } else if ((*p & 0xe0) == 0xc0 && (p[1] & 0xc0) == 0x80) {
            cp = ((unsigned)(*p & 0x1f) << 6) | (p[1] & 0x3f);
            n = 2;
        } else if ((*p & 0xf0) == 0xe0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80) {
            cp = ((unsigned)(*p & 0x0f) << 12) | ((unsigned)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
            n = 3;
        } else if ((*p & 0xf8) == 0xf0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
                   (p[3] & 0xc0) == 0x80) {
            cp = ((unsigned)(*p & 0x07) << 18) | ((unsigned)(p[1] & 0x3f) << 12) |
                 ((unsigned)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
            n = 4;
        } else {
            cp = 0xfffd; /* cJSON only hands us valid text; be safe anyway */
            n = 1;
        }
        char x[16];
        switch (cp) {
        case '"': sb_str(b, "\\\""); break;
        case '\\': sb_str(b, "\\\\"); break;
        case '\n': sb_str(b, "\\n"); break;
        case '\r': sb_str(b, "\\r"); break;
        case '\t': sb_str(b, "\\t"); break;
        case '\b': sb_str(b, "\\b"); break;
        case '\f': sb_str(b, "\\f"); break;
        default:
            /* Python escapes everything outside ' '..'~' (DEL included) */
            if (cp >= 0x20 && cp < 0x7f) {
                x[0] = (char)cp;
                sb_add(b, x, 1);
            } else if (cp < 0x10000) {
                snprintf(x, sizeof(x), "\\u%04x", cp);
                sb_str(b, x);
            } else {
                unsigned v = cp - 0x10000;
                snprintf(x, sizeof(x), "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
                sb_str(b, x);
            }
        }
        p += n;
    }
    sb_str(b, "\"");
}

static void py_json(struct sbuf *b, const cJSON *v)
{
    if (cJSON_IsNull(v)) {
        sb_str(b, "null");
    } else if (cJSON_IsTrue(v)) {
        sb_str(b, "true");
    } else if (cJSON_IsFalse(v)) {
        sb_str(b, "false");
    } else if (cJSON_IsNumber(v)) {
        py_number(b, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        py_json_string(b, v->valuestring);
    } else if (cJSON_IsArray(v)) {
        sb_str(b, "[");
        for (const cJSON *c = v->child; c; c = c->next) {
            py_json(b, c);
            if (c->next)
                sb_str(b, ", ");
        }
        sb_str(b, "]");
    } else if (cJSON_IsObject(v)) {
        sb_str(b, "{");
        for (const cJSON *c = v->child; c; c = c->next) {
            py_json_string(b, c->string ? c->string : "");
            sb_str(b, ": ");
            py_json(b, c);
            if (c->next)
                sb_str(b, ", ");
        }
        sb_str(b, "}");
    } else {
        sb_str(b, "null");
    }
}

char *taskenv_pyjson(const cJSON *v)
{
    struct sbuf b = {0};
    py_json(&b, v);
    return b.p;
}

char *taskenv_pystr(const cJSON *v)
{
    struct sbuf b = {0};
    if (cJSON_IsTrue(v))
        sb_str(&b, "True");
    else if (cJSON_IsFalse(v))
        sb_str(&b, "False");
    else if (cJSON_IsNull(v))
        sb_str(&b, "None");
    else if (cJSON_IsNumber(v))
        py_number(&b, v->valuedouble);
    else if (cJSON_IsString(v))
        sb_str(&b, v->valuestring);
    else
        py_json(&b, v);
    if (!b.p)
        sb_str(&b, "");
    return b.p;
}

void taskenv_add(struct taskenv *env, const char *key, const char *value)
{
    env->vars = gw_xrealloc(env->vars, (env->n + 2) * sizeof(char *));
    env->vars[env->n++] = gw_xasprintf("%s=%s", key, value);
    env->vars[env->n] = NULL;
}

const char *taskenv_get(const struct taskenv *env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp(env->vars[i], key, kl) == 0 && env->vars[i][kl] == '=')
            return env->vars[i] + kl + 1;
    return NULL;
}

void taskenv_cleanup(struct taskenv *env)
{
    for (size_t i = 0; i < env->n; i++)
        free(env->vars[i]);
    free(env->vars);
    env->vars = NULL;
    env->n = 0;
}

static int add_addresses(struct taskenv *env, const char *kind, const cJSON *map,
                         struct gw_errbuf *eb)
{
    if (!map)
        return 0;
    if (!cJSON_IsObject(map))
        return gw_errf(eb, GW_EINVAL, "%s addresses must be an object", kind);
    for (const cJSON *a = map->child; a; a = a->next) {
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(a, "namespace");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(a, "name");
        if (!cJSON_IsString(ns) || !cJSON_IsString(nm))
            return gw_errf(eb, GW_EINVAL, "%s '%s': address needs string namespace and name",
                           kind, a->string);
        /* FATE-Flow writes name first, then namespace */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", nm->valuestring);
        cJSON_AddStringToObject(o, "namespace", ns->valuestring);
        char *v = taskenv_pyjson(o);
        cJSON_Delete(o);
        char key[256];
        snprintf(key, sizeof(key), "runtime.component.%s.%s", kind, a->string);
        taskenv_add(env, key, v);
        free(v);
    }
    return 0;
}

int taskenv_build(const struct taskenv_in *in, struct taskenv *out, struct gw_errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    if (!in->job_id || !in->task_id || !in->component || !in->self_role || !in->storage ||
        !in->callback)
        return gw_errf(eb, GW_EINVAL, "task environment needs job, task, component, role, "
                                      "storage and callback");
    if (in->self_index < 0)
        return gw_errf(eb, GW_EINVAL, "role index must be >= 0");
    struct taskenv env = {0};
    char buf[512];
    char *session = in->session_id ? gw_xstrdup(in->session_id)
                                   : gw_xasprintf("session_%s", in->job_id);

    taskenv_add(&env, "runtime.component.name", in->component);
    if (in->params) {
        if (!cJSON_IsObject(in->params)) {
            free(session);
            taskenv_cleanup(&env);
            return gw_errf(eb, GW_EINVAL, "component parameters must be an object");
        }
        for (const cJSON *p = in->params->child; p; p = p->next) {
            if (cJSON_IsNull(p))
                continue; /* FF writes None as a bare key: absent */
            char *v = taskenv_pystr(p);
            snprintf(buf, sizeof(buf), "runtime.component.parameter.%s", p->string);
            taskenv_add(&env, buf, v);
            free(v);
        }
    }
    if (add_addresses(&env, "input", in->inputs, eb) != 0 ||
        add_addresses(&env, "output", in->outputs, eb) != 0) {
        free(session);
        taskenv_cleanup(&env);
        return GW_EINVAL;
    }
    taskenv_add(&env, "config.task_id", in->task_id);
    taskenv_add(&env, "config.session_id", session);
    taskenv_add(&env, "config.token", in->token ? in->token : session);
    if (in->trace_id)
        taskenv_add(&env, "config.trace_id", in->trace_id);
    if (in->nodes) {
        if (!cJSON_IsObject(in->nodes)) {
            free(session);
            taskenv_cleanup(&env);
            return gw_errf(eb, GW_EINVAL, "task parties must be an object of role -> [node ids]");
        }
        for (const cJSON *r = in->nodes->child; r; r = r->next) {
            if (!cJSON_IsArray(r)) {
                free(session);
                taskenv_cleanup(&env);
                return gw_errf(eb, GW_EINVAL, "parties of role '%s' must be an array", r->string);
            }
            int i = 0;
            for (const cJSON *n = r->child; n; n = n->next, i++) {
                if (!cJSON_IsString(n)) {
                    free(session);
                    taskenv_cleanup(&env);
                    return gw_errf(eb, GW_EINVAL, "node %d of role '%s' is not a string", i,
                                   r->string);
                }
                snprintf(buf, sizeof(buf), "config.inst_id.%s.%d", r->string, i);
                taskenv_add(&env, buf, n->valuestring);
                snprintf(buf, sizeof(buf), "config.node_id.%s.%d", r->string, i);
                taskenv_add(&env, buf, n->valuestring);
            }
        }
    }
    taskenv_add(&env, "config.log.path", in->log_path ? in->log_path : "/data/logs");
    snprintf(buf, sizeof(buf), "%s.%d", in->self_role, in->self_index);
    taskenv_add(&env, "config.self_role", buf);
    taskenv_add(&env, "system.storage", in->storage);
    if (in->transport)
        taskenv_add(&env, "system.transport", in->transport);
    taskenv_add(&env, "system.callback", in->callback);
    free(session);
    *out = env;
    return 0;
}

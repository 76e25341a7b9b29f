/*
 * psi_config.c - the component's environment, parsed and checked.
 */
#include "psi_config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "psi_suite.h"

#define PARAM "runtime.component.parameter."
#define MAX_PARTIES 64

static const char *env_get(char *const *envp, const char *key)
{
    size_t kl = strlen(key);
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
            return *e + kl + 1;
    return NULL;
}

static const char *param(char *const *envp, const char *name)
{
    char k[256];
    snprintf(k, sizeof(k), PARAM "%s", name);
    const char *v = env_get(envp, k);
    /* FATE-Flow writes a None parameter as a bare key: treat "" as absent */
    return v && *v ? v : NULL;
}

static int copy(char *dst, size_t cap, const char *src, const char *what, char *err, size_t errlen)
{
    if (strlen(src) >= cap) {
        snprintf(err, errlen, "%s: longer than %zu bytes", what, cap - 1);
        return -1;
    }
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

/* An integer parameter, lenient about "1.0". */
static int int_param(char *const *envp, const char *name, long def, long lo, long hi, long *out,
                     char *err, size_t errlen)
{
    const char *v = param(envp, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    double d = strtod(v, &end);
    while (*end && isspace((unsigned char)*end))
        end++;
    if (end == v || *end || d != floor(d) || d < (double)lo || d > (double)hi) {
        snprintf(err, errlen, "%s: '%s' is not an integer in [%ld, %ld]", name, v, lo, hi);
        return -1;
    }
    *out = (long)d;
    return 0;
}

bool psi_config_gets_result(const struct psi_config *c, int rank)
{
    return c->result_to_rank < 0 || c->result_to_rank == rank;
}

/* ---- JSON (flat objects of the launcher) --------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Parse a JSON string at p (after the quote); decode into out (cap; may be
 * NULL to skip).  Returns the position after the closing quote or NULL. */
static const char *json_string(const char *p, char *out, size_t cap, size_t *outlen)
{
    size_t n = 0;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        char buf[4];
        size_t bl = 1;
        if (c == '\0' || c < 0x20)
            return NULL;
        if (c == '"')
            break;
        if (c == '\\') {
            c = (unsigned char)*p++;
            switch (c) {
            case '"': case '\\': case '/': buf[0] = (char)c; break;
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    int h = *p++;
                    if (!isxdigit(h))
                        return NULL;
                    v = v * 16 + (unsigned)(isdigit(h) ? h - '0' : (tolower(h) - 'a' + 10));
                }
                if (v >= 0xd800 && v <= 0xdfff)
                    return NULL; /* surrogates: never in a dataset name */
                if (v < 0x80) {
                    buf[0] = (char)v;
                } else if (v < 0x800) {
                    buf[0] = (char)(0xc0 | v >> 6);
                    buf[1] = (char)(0x80 | (v & 0x3f));
                    bl = 2;
                } else {
                    buf[0] = (char)(0xe0 | v >> 12);
                    buf[1] = (char)(0x80 | ((v >> 6) & 0x3f));
                    buf[2] = (char)(0x80 | (v & 0x3f));
                    bl = 3;
                }
                break;
            }
            default:
                return NULL;
            }
        } else {
            buf[0] = (char)c;
        }
        if (out) {
            if (n + bl >= cap)
                return NULL;
            memcpy(out + n, buf, bl);
        }
        n += bl;
    }
    if (out)
        out[n] = '\0';
    if (outlen)
        *outlen = n;
    return p;
}

int psi_config_json_str(const char *json, const char *key, char *out, size_t cap)
{
    if (!json)
        return -1;
    const char *p = skip_ws(json);
    if (*p++ != '{')
        return -1;
    int found = -1;
    p = skip_ws(p);
    if (*p == '}')
        return -1;
    for (;;) {
        char k[128];
        if (*p++ != '"' || !(p = json_string(p, k, sizeof(k), NULL)))
            return -1;
        p = skip_ws(p);
        if (*p++ != ':')
            return -1;
        p = skip_ws(p);
        if (*p == '"') {
            if (strcmp(k, key) == 0) {
                if (!(p = json_string(p + 1, out, cap, NULL)))
                    return -1;
                found = 0;
            } else if (!(p = json_string(p + 1, NULL, 0, NULL))) {
                return -1;
            }
        } else { /* a scalar: number, true, false, null */
            if (strcmp(k, key) == 0)
                return -1;
            while (*p && *p != ',' && *p != '}' && !isspace((unsigned char)*p)) {
                if (*p == '{' || *p == '[' || *p == '"')
                    return -1;
                p++;
            }
        }
        p = skip_ws(p);
        if (*p == ',') {
            p = skip_ws(p + 1);
            continue;
        }
        if (*p == '}' && *skip_ws(p + 1) == '\0')
            return found;
        return -1;
    }
}

static int plain_name(const char *s)
{
    if (!*s || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (*s == '/' || *s == '\\' || (unsigned char)*s < 0x20)
            return 0;
    return 1;
}

int psi_config_resolve(const char *storage, const char *var, const char *json, bool input, char *out,
                       size_t cap, char *err, size_t errlen)
{
    if (!storage || strncmp(storage, "file://", 7) != 0) {
        snprintf(err, errlen, "system.storage: '%s' is not file:///path (the only storage this "
                 "component supports)", storage ? storage : "");
        return -1;
    }
    const char *root = storage + 7;
    char ns[256], nm[256];
    if (!json) {
        snprintf(err, errlen, "%s is missing", var);
        return -1;
    }
    if (psi_config_json_str(json, "namespace", ns, sizeof(ns)) != 0 ||
        psi_config_json_str(json, "name", nm, sizeof(nm)) != 0) {
        snprintf(err, errlen, "%s: '%.200s' is not {\"namespace\": \"...\", \"name\": \"...\"}", var,
                 json);
        return -1;
    }
    if (!plain_name(ns) || !plain_name(nm)) {
        snprintf(err, errlen, "%s: namespace and name must be plain names (no '/', no leading '.')",
                 var);
        return -1;
    }
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    int n = snprintf(out, cap, "%.*s/%s/%s/data", (int)rl, root, ns, nm);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, errlen, "%s: path too long", var);
        return -1;
    }
    if (input) {
        struct stat sb;
        if (stat(out, &sb) != 0) {
            char alt[PSI_CFG_PATH];
            snprintf(alt, sizeof(alt), "%.*s/%s/%s", (int)rl, root, ns, nm);
            if (stat(alt, &sb) == 0 && S_ISREG(sb.st_mode))
                snprintf(out, cap, "%s", alt);
        }
    }
    return 0;
}

/* ---- parties ------------------------------------------------------------------------------ */

static int party_name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_parties(char *const *envp, struct psi_config *c, char *err, size_t errlen)
{
    const char *prefix = "config.node_id.";
    size_t pl = strlen(prefix);
    char *names[MAX_PARTIES] = {0};
    int n = 0, rc = -1;
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, pl) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        if (n == MAX_PARTIES) {
            snprintf(err, errlen, "config.node_id.*: more than %d parties", MAX_PARTIES);
            goto out;
        }
        names[n] = strndup(*e + pl, (size_t)(eq - *e - (long)pl));
        if (!names[n]) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        n++;
        if (!party_name_ok(names[n - 1]) || strlen(names[n - 1]) >= sizeof(c->self_party)) {
            snprintf(err, errlen, "config.node_id.%s: not a role.index party name", names[n - 1]);
            goto out;
        }
    }
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    for (int i = 1; i < n; i++) {
        if (strcmp(names[i], names[i - 1]) == 0) {
            snprintf(err, errlen, "config.node_id.%s appears twice", names[i]);
            goto out;
        }
    }
    if (n != 2) {
        snprintf(err, errlen, "config.node_id.*: ECDH-PSI runs between exactly two parties, "
                 "the task has %d", n);
        goto out;
    }
    c->self_rank = -1;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], c->self_party) == 0)
            c->self_rank = i;
    if (c->self_rank < 0) {
        snprintf(err, errlen, "config.self_role: '%s' is not one of the parties (%s, %s)",
                 c->self_party, names[0], names[1]);
        goto out;
    }
    c->peer_rank = 1 - c->self_rank;
    snprintf(c->peer_party, sizeof(c->peer_party), "%s", names[c->peer_rank]);
    const struct {
        const char *party;
        char *node, *inst;
    } who[2] = {{c->self_party, c->self_node, c->self_inst}, {c->peer_party, c->peer_node, c->peer_inst}};
    for (int i = 0; i < 2; i++) {
        char k[128];
        snprintf(k, sizeof(k), "config.node_id.%s", who[i].party);
        const char *v = env_get(envp, k);
        if (!v || !*v) {
            snprintf(err, errlen, "%s is empty", k);
            goto out;
        }
        if (copy(who[i].node, PSI_CFG_STR, v, k, err, errlen) != 0)
            goto out;
        snprintf(k, sizeof(k), "config.inst_id.%s", who[i].party);
        v = env_get(envp, k);
        /* FATE-Flow and our gateway set both; fall back to the node id */
        if (copy(who[i].inst, PSI_CFG_STR, v && *v ? v : who[i].node, k, err, errlen) != 0)
            goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < n; i++)
        free(names[i]);
    return rc;
}

/* ---- algorithm parameters ------------------------------------------------------------------- */

static int load_params(char *const *envp, struct psi_config *c, char *err, size_t errlen)
{
    const char *v = param(envp, "algo");
    if (v && strcasecmp(v, "ecdh_psi") != 0 && strcasecmp(v, "ALGO_TYPE_ECDH_PSI") != 0) {
        snprintf(err, errlen, "algo: '%s' is not supported (this component runs ecdh_psi)", v);
        return -1;
    }
    v = param(envp, "protocol_families");
    if (v) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", v);
        bool ecc = false;
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (isspace((unsigned char)*t))
                t++;
            char *e = t + strlen(t);
            while (e > t && isspace((unsigned char)e[-1]))
                *--e = '\0';
            if (strcasecmp(t, "ecc") == 0 || strcasecmp(t, "PROTOCOL_FAMILY_ECC") == 0)
                ecc = true;
            else {
                snprintf(err, errlen, "protocol_families: '%s' is not supported (ecdh_psi uses ecc)",
                         t);
                return -1;
            }
        }
        if (!ecc) {
            snprintf(err, errlen, "protocol_families: '%s' does not name ecc", v);
            return -1;
        }
    }
    v = param(envp, "curve_type");
    c->curve = v ? psi_curve_parse(v) : PSI_CURVE_CURVE25519;
    if (c->curve < 0) {
        snprintf(err, errlen, "curve_type: '%s' is not a curve (curve25519, sm2)", v);
        return -1;
    }
    v = param(envp, "hash_type");
    c->hash = v ? psi_hash_parse(v) : PSI_HASH_SHA_256;
    if (c->hash < 0) {
        snprintf(err, errlen, "hash_type: '%s' is not a hash (sha_256, sm3)", v);
        return -1;
    }
    v = param(envp, "hash2curve_strategy");
    if (v)
        c->h2c = psi_h2c_parse(v);
    else if (c->curve == PSI_CURVE_SM2)
        c->h2c = c->hash == PSI_HASH_SM3 ? PSI_H2C_TRY_AND_INCREMENT : PSI_H2C_TRY_AND_REHASH;
    else
        c->h2c = PSI_H2C_DIRECT_HASH_AS_POINT_X;
    if (c->h2c < 0) {
        snprintf(err, errlen, "hash2curve_strategy: '%s' is not a strategy", v);
        return -1;
    }
    v = param(envp, "point_octet_format");
    if (v)
        c->fmt = psi_fmt_parse(v);
    else
        c->fmt = c->curve == PSI_CURVE_SM2 ? PSI_FMT_X962_COMPRESSED : PSI_FMT_UNCOMPRESSED;
    if (c->fmt < 0) {
        snprintf(err, errlen, "point_octet_format: '%s' is not a point format", v);
        return -1;
    }
    if (psi_suite_check(c->curve, c->hash, c->h2c, c->fmt, err, errlen) != 0)
        return -1;
    long x;
    int point_bits = c->curve == PSI_CURVE_SM2 ? 256 : 255;
    if (int_param(envp, "bit_length_after_truncated", -1, -1, 256, &x, err, errlen) != 0)
        return -1;
    if (x != -1 && (x <= 0 || x % 8 != 0 || x > point_bits)) {
        snprintf(err, errlen, "bit_length_after_truncated: %ld is neither -1 nor a multiple of 8 "
                 "up to %d", x, point_bits);
        return -1;
    }
    c->trunc_bits = (int)x;
    if (int_param(envp, "result_to_rank", -1, -1, 1, &x, err, errlen) != 0)
        return -1;
    c->result_to_rank = (int)x;
    v = param(envp, "field_names");
    if (copy(c->field_names, sizeof(c->field_names), v ? v : "id", "field_names", err, errlen) != 0)
        return -1;
    if (int_param(envp, "spill_threshold_mb", 64, 0, 1 << 20, &x, err, errlen) != 0)
        return -1;
    c->spill_bytes = (size_t)x << 20;
    if (int_param(envp, "recv_timeout_s", 60, 1, 86400, &x, err, errlen) != 0)
        return -1;
    c->recv_timeout_ms = (int)x * 1000;
    c->fin_timeout_ms = c->recv_timeout_ms * 2;
    if (int_param(envp, "connect_timeout_s", 120, 1, 86400, &x, err, errlen) != 0)
        return -1;
    c->connect_timeout_ms = (int)x * 1000;
    if (int_param(envp, "threads", 0, 0, 256, &x, err, errlen) != 0)
        return -1;
    c->threads = (int)x;
    return 0;
}

/* ---- all ---------------------------------------------------------------------------------------- */

int psi_config_load(char *const *envp, struct psi_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    const char *v;
    if ((v = env_get(envp, "config.task_id")))
        snprintf(c->task_id, sizeof(c->task_id), "%s", v);
    if ((v = env_get(envp, "system.callback")))
        snprintf(c->callback, sizeof(c->callback), "%s", v);
    if ((v = env_get(envp, "config.attest.token_file")))
        snprintf(c->token_file, sizeof(c->token_file), "%s", v);
    if ((v = env_get(envp, "config.attest.token")))
        snprintf(c->attest_token, sizeof(c->attest_token), "%s", v);
    v = env_get(envp, "config.self_role");
    if (!v || !*v) {
        snprintf(err, errlen, "config.self_role is missing");
        return -1;
    }
    if (strchr(v, ',')) {
        snprintf(err, errlen, "config.self_role: '%s' names several roles; ECDH-PSI runs one "
                 "party per container", v);
        return -1;
    }
    if (!party_name_ok(v) || copy(c->self_party, sizeof(c->self_party), v, "config.self_role", err,
                                  errlen) != 0) {
        snprintf(err, errlen, "config.self_role: '%.80s' is not a role.index party name", v);
        return -1;
    }
    if (load_parties(envp, c, err, errlen) != 0 || load_params(envp, c, err, errlen) != 0)
        return -1;

    /* transport: address, session and token required (token may be empty),
     * trace optional (FATE-Flow leaves it out) */
    const struct {
        const char *key;
        char *dst;
        size_t cap;
        int need; /* 2 non-empty, 1 present, 0 optional */
    } strs[] = {{"system.transport", c->transport, sizeof(c->transport), 2},
                {"config.session_id", c->session_id, sizeof(c->session_id), 2},
                {"config.token", c->token, sizeof(c->token), 1},
                {"config.trace_id", c->trace_id, sizeof(c->trace_id), 0}};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        v = env_get(envp, strs[i].key);
        if ((!v && strs[i].need) || (v && !*v && strs[i].need == 2)) {
            snprintf(err, errlen, "%s is missing", strs[i].key);
            return -1;
        }
        if (v && copy(strs[i].dst, strs[i].cap, v, strs[i].key, err, errlen) != 0)
            return -1;
    }

    const char *storage = env_get(envp, "system.storage");
    if (psi_config_resolve(storage, "runtime.component.input.train_data",
                           env_get(envp, "runtime.component.input.train_data"), true,
                           c->input_path, sizeof(c->input_path), err, errlen) != 0)
        return -1;
    const char *out = env_get(envp, "runtime.component.output.train_data");
    if (psi_config_gets_result(c, c->self_rank)) {
        if (psi_config_resolve(storage, "runtime.component.output.train_data", out, false,
                               c->output_path, sizeof(c->output_path), err, errlen) != 0)
            return -1;
    } else if (out && *out &&
               psi_config_resolve(storage, "runtime.component.output.train_data", out, false,
                                  c->output_path, sizeof(c->output_path), err, errlen) != 0) {
        return -1;
    }
    const char *rep = env_get(envp, "runtime.component.output.report");
    if (rep && *rep) {
        if (psi_config_resolve(storage, "runtime.component.output.report", rep, false,
                               c->report_path, sizeof(c->report_path), err, errlen) != 0)
            return -1;
    } else if (c->output_path[0]) {
        /* beside the dataset: <root>/<ns>/<name>/report.json */
        snprintf(c->report_path, sizeof(c->report_path), "%s", c->output_path);
        char *slash = strrchr(c->report_path, '/');
        if (slash && (size_t)(slash - c->report_path) + 13 < sizeof(c->report_path))
            strcpy(slash + 1, "report.json");
    }
    return 0;
}

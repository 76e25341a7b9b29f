/*
 * cfg.c - configuration: one key table, a YAML file (libyaml events, so
 * every error can name file:line), then the environment.
 */
#include "cfg.h"

#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "log.h"

enum cfg_type { CFG_STR, CFG_INT, CFG_INT64 };

struct cfg_key {
    const char *name;   /* dotted path: "http.port" */
    enum cfg_type type;
    size_t off;         /* offset in struct gw_cfg */
    const char *def;    /* default, as text */
    long long min, max; /* integer bounds */
    bool reloadable;
    bool secret;
};

#define S(f) CFG_STR, offsetof(struct gw_cfg, f)
#define I(f) CFG_INT, offsetof(struct gw_cfg, f)
#define L(f) CFG_INT64, offsetof(struct gw_cfg, f)

/* The one table: name, type+field, default, bounds, reloadable, secret. */
static const struct cfg_key keys[] = {
    {"node_id", S(node_id), "", 0, 0, false, false},
    {"http.host", S(http_host), "127.0.0.1", 0, 0, false, false},
    {"http.port", I(http_port), "8080", 1, 65535, false, false},
    {"http.body_max", L(http_body_max), "16777216", 1024, 1LL << 30, true, false},
    {"http.header_max", I(http_header_max), "65536", 1024, 1 << 20, true, false},
    {"http.timeout_s", I(http_timeout_s), "30", 1, 3600, true, false},
    {"http.header_timeout_s", I(http_header_timeout_s), "10", 1, 3600, true, false},
    {"http.body_timeout_s", I(http_body_timeout_s), "30", 1, 86400, true, false},
    {"http.body_min_rate", I(http_body_min_rate), "16384", 0, 1 << 30, true, false},
    {"http.max_conns_per_addr", I(http_max_conns_per_addr), "1024", 0, 1000000, true, false},
    {"http.max_conns", I(http_max_conns), "4096", 1, 1000000, true, false},
    {"http.platform_allow", S(http_platform_allow), "127.0.0.0/8,::1", 0, 0, true, false},
    {"db.dsn", S(db_dsn), "host=/var/run/postgresql dbname=bfia", 0, 0, false, true},
    {"db.pool_size", I(db_pool_size), "4", 1, 64, false, false},
    {"db.queue_max", I(db_queue_max), "1024", 1, 1000000, true, false},
    {"db.statement_timeout_ms", I(db_statement_timeout_ms), "30000", 100, 3600000, false, false},
    {"db.connect_timeout_s", I(db_connect_timeout_s), "5", 1, 300, false, false},
    {"db.startup_wait_s", I(db_startup_wait_s), "30", 0, 3600, false, false},
    {"docker.host", S(docker_host), "unix:///var/run/docker.sock", 0, 0, false, false},
    {"docker.timeout_s", I(docker_timeout_s), "30", 1, 3600, true, false},
    {"routes_file", S(routes_file), "conf/route_table.example.yaml", 0, 0, true, false},
    {"data_dir", S(data_dir), "var/data", 0, 0, false, false},
    {"migrations_dir", S(migrations_dir), "migrations", 0, 0, false, false},
    {"log.level", S(log_level), "info", 0, 0, true, false},
    {"shutdown_timeout_s", I(shutdown_timeout_s), "10", 0, 3600, true, false},
    {"peer.timeout_ms", I(peer_timeout_ms), "10000", 100, 600000, true, false},
    {"peer.retries", I(peer_retries), "2", 0, 20, true, false},
    {"peer.body_max", L(peer_body_max), "16777216", 1024, 1LL << 30, true, false},
    {"docker.network", S(docker_network), "host", 0, 0, false, false},
    {"docker.pull", I(docker_pull), "1", 0, 1, false, false},
    {"docker.registry_auth", S(docker_registry_auth), "", 0, 0, false, true},
    {"docker.retain_s", I(docker_retain_s), "0", 0, 86400 * 30, true, false},
    {"docker.log_tail", I(docker_log_tail), "50", 1, 10000, true, false},
    {"task.cpu_milli_default", I(task_cpu_milli_default), "1000", 10, 1024000, true, false},
    {"task.cpu_milli_min", I(task_cpu_milli_min), "10", 10, 1024000, true, false},
    {"task.cpu_milli_max", I(task_cpu_milli_max), "4000", 10, 1024000, true, false},
    {"task.memory_mb_default", I(task_memory_mb_default), "1024", 6, 16777216, true, false},
    {"task.memory_mb_min", I(task_memory_mb_min), "6", 6, 16777216, true, false},
    {"task.memory_mb_max", I(task_memory_mb_max), "16384", 6, 16777216, true, false},
    {"docker.launch_slots", I(docker_launch_slots), "8", 1, 256, true, false},
    {"docker.log_tail_bytes", I(docker_log_tail_bytes), "8192", 256, 1048576, true, false},
    {"callback.host", S(callback_host), "127.0.0.1", 0, 0, false, false},
    {"sched.poll_ms", I(sched_poll_ms), "1000", 50, 600000, true, false},
    {"sched.backstop_ms", I(sched_backstop_ms), "10000", 100, 3600000, true, false},
    {"sched.party_deadline_s", I(sched_party_deadline_s), "300", 1, 86400 * 7, true, false},
    {"sched.stop_retry_s", I(sched_stop_retry_s), "10", 1, 3600, true, false},
    {"sched.push_retry_s", I(sched_push_retry_s), "10", 1, 3600, true, false},
    {"sched.job_timeout_s", I(sched_job_timeout_s), "259200", 0, 86400 * 365, true, false},
    {"sched.resend_after_s", I(sched_resend_after_s), "5", 1, 3600, true, false},
    {"sched.sweep_window_s", I(sched_sweep_window_s), "86400", 60, 86400 * 30, true, false},
    {"sched.sweep_limit", I(sched_sweep_limit), "200", 1, 100000, true, false},
    {"upload.max", L(upload_max), "268435456", 1024, 1LL << 40, true, false},
    {"auth.window_s", I(auth_window_s), "300", 5, 3600, true, false},
    {"auth.source_check", I(auth_source_check), "0", 0, 1, true, false},
    {"auth.jwks_max_age_s", I(auth_jwks_max_age_s), "300", 1, 86400, true, false},
    {"auth.jwks_refetch_s", I(auth_jwks_refetch_s), "60", 0, 3600, true, false},
    {"attest.key_publish_s", I(attest_key_publish_s), "330", 0, 86400 * 7, true, false},
    {"attest.key_file", S(attest_key_file), "", 0, 0, false, false},
    {"attest.token_ttl_s", I(attest_token_ttl_s), "3600", 10, 3600, true, false},
    {"attest.exchange_per_s", I(attest_exchange_per_s), "10", 1, 10000, false, false},
    {"attest.env_token", I(attest_env_token), "1", 0, 1, false, false},
    {"transport.port", I(transport_port), "7304", 0, 65535, false, false},
    {"transport.host", S(transport_host), "127.0.0.1", 0, 0, false, false},
    {"transport.advertise", S(transport_advertise), "", 0, 0, false, false},
    {"transport.body_max", L(transport_body_max), "134217728", 1024, 1LL << 31, true, false},
    {"transport.session_bytes", L(transport_session_bytes), "268435456", 1024, 1LL << 40, true,
     false},
    {"transport.session_msgs", I(transport_session_msgs), "100000", 1, 100000000, true, false},
    {"transport.total_bytes", L(transport_total_bytes), "1073741824", 1024, 1LL << 42, true, false},
    {"transport.total_msgs", I(transport_total_msgs), "1000000", 1, 1000000000, true, false},
    {"transport.max_sessions", I(transport_max_sessions), "10000", 1, 10000000, true, false},
    {"transport.max_waiters", I(transport_max_waiters), "256", 1, 100000, true, false},
    {"transport.push_wait_s", I(transport_push_wait_s), "120", 1, 300, true, false},
    {"transport.idle_s", I(transport_idle_s), "600", 1, 86400 * 7, true, false},
    {"transport.released_s", I(transport_released_s), "1800", 1, 86400 * 7, true, false},
    {"transport.relay_retries", I(transport_relay_retries), "3", 0, 20, true, false},
    {"transport.batch_bytes", L(transport_batch_bytes), "1048576", 131072, 1LL << 26, true, false},
    {"transport.batch_msgs", I(transport_batch_msgs), "512", 1, 10000, true, false},
    {"transport.relay_lanes", I(transport_relay_lanes), "1", 1, 64, false, false},
};

#define NKEYS GW_ARRAY_LEN(keys)

static char **str_at(struct gw_cfg *c, const struct cfg_key *k) { return (char **)((char *)c + k->off); }
static int *int_at(struct gw_cfg *c, const struct cfg_key *k) { return (int *)((char *)c + k->off); }
static long long *i64_at(struct gw_cfg *c, const struct cfg_key *k)
{
    return (long long *)((char *)c + k->off);
}

static const struct cfg_key *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Set one key from text; origin names the place for messages. */
static int set_value(struct gw_cfg *c, const struct cfg_key *k, const char *val, const char *origin,
                     struct gw_errbuf *eb)
{
    if (k->type == CFG_STR) {
        if (strlen(val) > 4096)
            return gw_errf(eb, GW_EINVAL, "%s: value of '%s' is longer than 4096 bytes", origin,
                           k->name);
        char **p = str_at(c, k);
        free(*p);
        *p = gw_xstrdup(val);
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end != '\0' || v < k->min || v > k->max)
        return gw_errf(eb, GW_EINVAL, "%s: '%s' expects an integer in %lld..%lld, got '%.64s'",
                       origin, k->name, k->min, k->max, val);
    if (k->type == CFG_INT)
        *int_at(c, k) = (int)v;
    else
        *i64_at(c, k) = v;
    return 0;
}

struct gw_cfg *cfg_new_defaults(void)
{
    struct gw_cfg *c = gw_xcalloc(1, sizeof(*c));
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = set_value(c, &keys[i], keys[i].def, "default", NULL);
        (void)rc; /* the table's defaults are valid: test_cfg checks it */
    }
    return c;
}

void cfg_free(struct gw_cfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == CFG_STR)
            free(*str_at(c, &keys[i]));
    free(c);
}

/* ---- YAML ------------------------------------------------------------------ */

struct yp {
    yaml_parser_t p;
    yaml_event_t ev;
    bool have;
    const char *name;
    struct gw_errbuf *eb;
};

static int yp_next(struct yp *y)
{
    if (y->have)
        yaml_event_delete(&y->ev);
    y->have = false;
    if (!yaml_parser_parse(&y->p, &y->ev)) {
        return gw_errf(y->eb, GW_EINVAL, "%s:%zu: invalid YAML: %s%s%s", y->name,
                       y->p.problem_mark.line + 1, y->p.problem ? y->p.problem : "syntax error",
                       y->p.context ? " " : "", y->p.context ? y->p.context : "");
    }
    y->have = true;
    return 0;
}

static size_t yp_line(const struct yp *y) { return y->ev.start_mark.line + 1; }

/* Parse a mapping whose keys get prefix (e.g. "http."); one level of
 * sections is all the format has. */
static int parse_mapping(struct yp *y, struct gw_cfg *c, const char *prefix, bool *seen)
{
    for (;;) {
        int rc = yp_next(y);
        if (rc)
            return rc;
        if (y->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (y->ev.type != YAML_SCALAR_EVENT)
            return gw_errf(y->eb, GW_EINVAL, "%s:%zu: expected a key", y->name, yp_line(y));
        char key[128];
        size_t line = yp_line(y);
        snprintf(key, sizeof(key), "%s%.*s", prefix, (int)(y->ev.data.scalar.length > 100 ? 100 : y->ev.data.scalar.length),
                 (const char *)y->ev.data.scalar.value);
        rc = yp_next(y);
        if (rc)
            return rc;
        if (y->ev.type == YAML_MAPPING_START_EVENT) {
            if (*prefix)
                return gw_errf(y->eb, GW_EINVAL, "%s:%zu: '%s' must be a scalar, not a mapping",
                               y->name, line, key);
            /* a section: is it a known one? */
            size_t kl = strlen(key);
            bool known = false;
            for (size_t i = 0; i < NKEYS; i++)
                if (strncmp(keys[i].name, key, kl) == 0 && keys[i].name[kl] == '.')
                    known = true;
            if (!known)
                return gw_errf(y->eb, GW_EINVAL, "%s:%zu: unknown section '%s'", y->name, line, key);
            char sub[140];
            snprintf(sub, sizeof(sub), "%s.", key);
            rc = parse_mapping(y, c, sub, seen);
            if (rc)
                return rc;
            continue;
        }
        const struct cfg_key *k = find_key(key);
        if (!k)
            return gw_errf(y->eb, GW_EINVAL, "%s:%zu: unknown key '%s'", y->name, line, key);
        if (y->ev.type != YAML_SCALAR_EVENT)
            return gw_errf(y->eb, GW_EINVAL, "%s:%zu: '%s' must be a scalar", y->name, line, key);
        size_t idx = (size_t)(k - keys);
        if (seen[idx])
            return gw_errf(y->eb, GW_EINVAL, "%s:%zu: duplicate key '%s'", y->name, line, key);
        seen[idx] = true;
        if (strlen((const char *)y->ev.data.scalar.value) != y->ev.data.scalar.length)
            return gw_errf(y->eb, GW_EINVAL, "%s:%zu: '%s' contains a NUL byte", y->name, line, key);
        char origin[300];
        snprintf(origin, sizeof(origin), "%s:%zu", y->name, line);
        rc = set_value(c, k, (const char *)y->ev.data.scalar.value, origin, y->eb);
        if (rc)
            return rc;
    }
}

static int parse_yaml(struct gw_cfg *c, const char *text, size_t len, const char *name,
                      struct gw_errbuf *eb)
{
    struct yp y;
    memset(&y, 0, sizeof(y));
    y.name = name;
    y.eb = eb;
    if (!yaml_parser_initialize(&y.p))
        return gw_errf(eb, GW_EINTERNAL, "libyaml initialisation failed");
    yaml_parser_set_input_string(&y.p, (const unsigned char *)text, len);
    bool seen[NKEYS];
    memset(seen, 0, sizeof(seen));
    int rc = 0;
    bool done = false;
    while (!rc && !done) {
        rc = yp_next(&y);
        if (rc)
            break;
        switch (y.ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            rc = parse_mapping(&y, c, "", seen);
            break;
        case YAML_SCALAR_EVENT:
            /* an empty document is a null scalar: defaults only */
            if (y.ev.data.scalar.length == 0)
                break;
            /* fall through */
        default:
            rc = gw_errf(eb, GW_EINVAL, "%s:%zu: the top level must be a mapping of keys", name,
                         yp_line(&y));
        }
    }
    if (y.have)
        yaml_event_delete(&y.ev);
    yaml_parser_delete(&y.p);
    return rc;
}

static int apply_env(struct gw_cfg *c, char *const *envp, struct gw_errbuf *eb)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char env[128] = "GW_";
        size_t o = 3;
        for (const char *p = keys[i].name; *p && o < sizeof(env) - 1; p++)
            env[o++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[o] = '\0';
        for (char *const *e = envp; e && *e; e++) {
            if (strncmp(*e, env, o) == 0 && (*e)[o] == '=') {
                int rc = set_value(c, &keys[i], *e + o + 1, env, eb);
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

/* "a.b.c.d[/n]" or "v6[/n]" into out. */
static bool cidr_parse(const char *s, size_t len, struct gw_cidr *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return false;
    }
    if (slash) {
        char *end = NULL;
        long b = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || b < 0 || b > out->bits)
            return false;
        out->bits = (int)b;
    }
    return true;
}

/* http.platform_allow: "*" (anyone) or a comma-separated list of networks. */
static int parse_allow(struct gw_cfg *c, struct gw_errbuf *eb)
{
    const char *s = c->http_platform_allow;
    c->platform_allow_n = 0;
    while (*s == ' ')
        s++;
    if (strcmp(s, "*") == 0) {
        c->platform_allow_n = -1;
        return 0;
    }
    while (*s) {
        size_t n = strcspn(s, ", ");
        if (n > 0) {
            if (c->platform_allow_n == GW_CIDR_MAX)
                return gw_errf(eb, GW_EINVAL, "http.platform_allow: more than %d networks",
                               GW_CIDR_MAX);
            if (!cidr_parse(s, n, &c->platform_allow[c->platform_allow_n]))
                return gw_errf(eb, GW_EINVAL,
                               "http.platform_allow: '%.*s' is not an address or network "
                               "(a.b.c.d/n or an IPv6 address/n)", (int)(n > 64 ? 64 : n), s);
            c->platform_allow_n++;
        }
        s += n;
        while (*s == ',' || *s == ' ')
            s++;
    }
    if (c->platform_allow_n == 0)
        return gw_errf(eb, GW_EINVAL, "http.platform_allow: empty; list networks, or '*' for "
                                      "anyone");
    return 0;
}

static bool cidr_match(const struct gw_cidr *n, int family, const unsigned char *a)
{
    if (n->family != family)
        return false;
    int full = n->bits / 8, rest = n->bits % 8;
    if (memcmp(n->addr, a, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (n->addr[full] & mask) == (a[full] & mask);
}

bool cfg_platform_allowed(const struct gw_cfg *c, const char *addr)
{
    if (c->platform_allow_n < 0)
        return true;
    unsigned char a[16];
    int fam;
    if (!addr)
        return false;
    if (inet_pton(AF_INET, addr, a) == 1) {
        fam = AF_INET;
    } else if (inet_pton(AF_INET6, addr, a) == 1) {
        fam = AF_INET6;
        /* an IPv4 client on a dual-stack socket: ::ffff:a.b.c.d */
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            fam = AF_INET;
        }
    } else {
        return false;
    }
    for (int i = 0; i < c->platform_allow_n; i++)
        if (cidr_match(&c->platform_allow[i], fam, a))
            return true;
    return false;
}

static int validate(struct gw_cfg *c, struct gw_errbuf *eb)
{
    if (!c->node_id[0])
        return gw_errf(eb, GW_EINVAL,
                       "node_id: required (set node_id: in the file or GW_NODE_ID)");
    size_t n = strlen(c->node_id);
    if (n > 64)
        return gw_errf(eb, GW_EINVAL, "node_id: longer than 64 characters");
    for (size_t i = 0; i < n; i++) {
        char ch = c->node_id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-') || (i == 0 && ch == '.'))
            return gw_errf(eb, GW_EINVAL,
                           "node_id: only letters, digits, '_', '.', '-' are allowed, got '%.64s'",
                           c->node_id);
    }
    enum log_level lv;
    if (!log_level_parse(c->log_level, &lv))
        return gw_errf(eb, GW_EINVAL, "log.level: expected error, warn, info or debug, got '%.32s'",
                       c->log_level);
    if (strncmp(c->docker_host, "unix:///", 8) != 0 && strncmp(c->docker_host, "tcp://", 6) != 0 &&
        strncmp(c->docker_host, "https://", 8) != 0)
        return gw_errf(eb, GW_EINVAL,
                       "docker.host: expected unix:///path, tcp://host:port or https://host:port, "
                       "got '%.128s'",
                       c->docker_host);
    if (!c->http_host[0])
        return gw_errf(eb, GW_EINVAL, "http.host: must not be empty");
    if (!c->data_dir[0])
        return gw_errf(eb, GW_EINVAL, "data_dir: must not be empty");
    if (!c->migrations_dir[0])
        return gw_errf(eb, GW_EINVAL, "migrations_dir: must not be empty");
    if (c->transport_session_bytes < c->transport_body_max ||
        c->transport_total_bytes < c->transport_session_bytes)
        return gw_errf(eb, GW_EINVAL, "transport: body_max <= session_bytes <= total_bytes is "
                                      "required (a largest message must fit a session)");
    if (c->transport_port && c->transport_port == c->http_port &&
        strcmp(c->transport_host, c->http_host) == 0)
        return gw_errf(eb, GW_EINVAL, "transport.port: same address as http.port; use 0 to serve "
                                      "the channel API on http.port");
    return parse_allow(c, eb);
}

struct gw_cfg *cfg_load_string(const char *yaml, size_t len, const char *name, char *const *envp,
                               struct gw_errbuf *eb)
{
    struct gw_cfg *c = cfg_new_defaults();
    int rc = yaml ? parse_yaml(c, yaml, len, name, eb) : 0;
    if (!rc)
        rc = apply_env(c, envp, eb);
    if (!rc)
        rc = validate(c, eb);
    if (rc) {
        cfg_free(c);
        return NULL;
    }
    return c;
}

#define CFG_FILE_MAX (1024 * 1024)

struct gw_cfg *cfg_load(const char *path, char *const *envp, struct gw_errbuf *eb)
{
    if (!path)
        return cfg_load_string(NULL, 0, "(none)", envp, eb);
    FILE *f = fopen(path, "rb");
    if (!f) {
        gw_errf(eb, GW_EINVAL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = gw_xmalloc(CFG_FILE_MAX + 1);
    size_t n = fread(buf, 1, CFG_FILE_MAX + 1, f);
    fclose(f);
    if (n > CFG_FILE_MAX) {
        free(buf);
        gw_errf(eb, GW_EINVAL, "%s: larger than %d bytes", path, CFG_FILE_MAX);
        return NULL;
    }
    buf[n] = '\0';
    struct gw_cfg *c = cfg_load_string(buf, n, path, envp, eb);
    free(buf);
    return c;
}

void cfg_diff(const struct gw_cfg *a, const struct gw_cfg *b,
              void (*cb)(void *arg, const char *key, bool reloadable), void *arg)
{
    struct gw_cfg *x = (struct gw_cfg *)a, *y = (struct gw_cfg *)b;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cfg_key *k = &keys[i];
        bool changed;
        if (k->type == CFG_STR)
            changed = strcmp(*str_at(x, k), *str_at(y, k)) != 0;
        else if (k->type == CFG_INT)
            changed = *int_at(x, k) != *int_at(y, k);
        else
            changed = *i64_at(x, k) != *i64_at(y, k);
        if (changed)
            cb(arg, k->name, k->reloadable);
    }
}

int cfg_reload(struct gw_cfg *cur, struct gw_cfg *next,
               void (*cb)(void *arg, const char *key, bool applied), void *arg)
{
    int applied = 0;
    bool allow = false;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cfg_key *k = &keys[i];
        bool changed;
        if (k->type == CFG_STR)
            changed = strcmp(*str_at(cur, k), *str_at(next, k)) != 0;
        else if (k->type == CFG_INT)
            changed = *int_at(cur, k) != *int_at(next, k);
        else
            changed = *i64_at(cur, k) != *i64_at(next, k);
        if (!changed)
            continue;
        if (k->reloadable) {
            if (k->type == CFG_STR) {
                char *t = *str_at(cur, k);
                *str_at(cur, k) = *str_at(next, k);
                *str_at(next, k) = t; /* freed with next */
            } else if (k->type == CFG_INT) {
                *int_at(cur, k) = *int_at(next, k);
            } else {
                *i64_at(cur, k) = *i64_at(next, k);
            }
            applied++;
            if (k->off == offsetof(struct gw_cfg, http_platform_allow))
                allow = true;
        }
        if (cb)
            cb(arg, k->name, k->reloadable);
    }
    /* Values derived from a key move with it. */
    if (allow) {
        memcpy(cur->platform_allow, next->platform_allow, sizeof(cur->platform_allow));
        cur->platform_allow_n = next->platform_allow_n;
    }
    return applied;
}

bool cfg_key_reloadable(const char *name)
{
    const struct cfg_key *k = find_key(name);
    return k && k->reloadable;
}

size_t cfg_key_count(void)
{
    return NKEYS;
}

const char *cfg_key_name(size_t i)
{
    return i < NKEYS ? keys[i].name : NULL;
}

void cfg_print(const struct gw_cfg *cfg, FILE *out)
{
    struct gw_cfg *c = (struct gw_cfg *)cfg;
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cfg_key *k = &keys[i];
        const char *dot = strchr(k->name, '.');
        const char *leaf = k->name;
        if (dot) {
            size_t sl = (size_t)(dot - k->name);
            if (strncmp(section, k->name, sl) != 0 || section[sl] != '.') {
                fprintf(out, "%.*s:\n", (int)sl, k->name);
            }
            section = k->name;
            leaf = dot + 1;
        } else {
            section = "";
        }
        const char *indent = dot ? "  " : "";
        if (k->secret)
            fprintf(out, "%s%s: \"***\"\n", indent, leaf);
        else if (k->type == CFG_STR)
            fprintf(out, "%s%s: \"%s\"\n", indent, leaf, *str_at(c, k));
        else if (k->type == CFG_INT)
            fprintf(out, "%s%s: %d\n", indent, leaf, *int_at(c, k));
        else
            fprintf(out, "%s%s: %lld\n", indent, leaf, *i64_at(c, k));
    }
}

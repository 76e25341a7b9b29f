/*
 * db_migrate.c - the start-up migration runner.
 *
 * Blocking libpq on purpose: it runs before the event loop starts (and in
 * bfiactl), where nothing else is waiting.  The banned-call check exempts
 * this file for that reason.
 */
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Any constant works as long as every gateway uses the same one. */
#define MIGRATE_LOCK_KEY "727301"
#define MIGRATE_MAX_FILES 1000
#define MIGRATE_MAX_BYTES (4 * 1024 * 1024)

struct mig_file {
    int version;
    char *name;
};

static int cmp_mig(const void *a, const void *b)
{
    const struct mig_file *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Parse "NNNN_name.sql"; returns the version or -1. */
static int mig_version(const char *name)
{
    size_t n = strlen(name);
    if (n < 9 || strcmp(name + n - 4, ".sql") != 0)
        return -1;
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return -1;
    if (name[4] != '_')
        return -1;
    return atoi(name) > 0 ? atoi(name) : -1;
}

static int list_migrations(const char *dir, struct mig_file **out, size_t *count,
                           struct gw_errbuf *eb)
{
    DIR *d = opendir(dir);
    if (!d)
        return gw_errf(eb, GW_EINVAL, "migrations directory '%s': %s", dir, strerror(errno));
    struct mig_file *v = NULL;
    size_t n = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        int ver = mig_version(de->d_name);
        if (ver < 0)
            continue;
        if (n >= MIGRATE_MAX_FILES) {
            rc = gw_errf(eb, GW_EINVAL, "too many migration files in '%s'", dir);
            break;
        }
        v = gw_xrealloc(v, (n + 1) * sizeof(*v));
        v[n].version = ver;
        v[n].name = gw_xstrdup(de->d_name);
        n++;
    }
    closedir(d);
    qsort(v, n, sizeof(*v), cmp_mig);
    for (size_t i = 1; rc == 0 && i < n; i++)
        if (v[i].version == v[i - 1].version)
            rc = gw_errf(eb, GW_EINVAL, "two migrations share version %04d: %s and %s",
                         v[i].version, v[i - 1].name, v[i].name);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            free(v[i].name);
        free(v);
        return rc;
    }
    *out = v;
    *count = n;
    return 0;
}

static void free_migrations(struct mig_file *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

int db_migrations_latest(const char *dir, struct gw_errbuf *eb)
{
    struct mig_file *v = NULL;
    size_t n = 0;
    int rc = list_migrations(dir, &v, &n, eb);
    if (rc != 0)
        return rc;
    int latest = n ? v[n - 1].version : 0;
    free_migrations(v, n);
    return latest;
}

static char *read_file(const char *path, struct gw_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        gw_errf(eb, GW_EINVAL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = gw_xmalloc(MIGRATE_MAX_BYTES + 1);
    size_t n = fread(buf, 1, MIGRATE_MAX_BYTES + 1, f);
    fclose(f);
    if (n > MIGRATE_MAX_BYTES) {
        free(buf);
        gw_errf(eb, GW_EINVAL, "%s: larger than %d bytes", path, MIGRATE_MAX_BYTES);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int exec_ok(PGconn *pg, const char *sql, struct gw_errbuf *eb, const char *what)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = gw_errf(eb, GW_EDB, "%s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", message);
    msg[strcspn(msg, "\n")] = '\0';
    log_kv(LOG_LEVEL_INFO, NULL, "db.notice", msg, NULL);
}

static PGconn *connect_wait(const char *dsn, int wait_s, struct gw_errbuf *eb)
{
    long long deadline = gw_now_mono_ms() + (long long)wait_s * 1000;
    long backoff_ms = 100;
    for (int attempt = 1;; attempt++) {
        PGconn *pg = PQconnectdb(dsn);
        if (PQstatus(pg) == CONNECTION_OK) {
            PQsetNoticeProcessor(pg, on_notice, NULL);
            return pg;
        }
        char why[512];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
        PQfinish(pg);
        why[strcspn(why, "\n")] = '\0';
        if (gw_now_mono_ms() + backoff_ms > deadline) {
            gw_errf(eb, GW_EDB, "database not reachable after %d s (%d attempts): %s", wait_s,
                    attempt, why);
            return NULL;
        }
        if (attempt == 1 || attempt % 10 == 0)
            log_kv(LOG_LEVEL_WARN, NULL, "db.wait", "waiting for PostgreSQL", "err", why, NULL);
        usleep((useconds_t)backoff_ms * 1000);
        backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
    }
}

int db_migrate(const char *dsn, const char *dir, int wait_s, const char *node_id, int *version,
               char *install_id, size_t install_cap, struct gw_errbuf *eb)
{
    struct mig_file *files = NULL;
    size_t nfiles = 0;
    int rc = list_migrations(dir, &files, &nfiles, eb);
    if (rc != 0)
        return rc;
    int latest = nfiles ? files[nfiles - 1].version : 0;

    PGconn *pg = connect_wait(dsn, wait_s, eb);
    if (!pg) {
        free_migrations(files, nfiles);
        return GW_EDB;
    }
    PGresult *r = PQexec(pg, "SET client_min_messages = warning");
    PQclear(r);
    rc = exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", eb, "migration lock");
    if (rc == 0)
        rc = exec_ok(pg,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version integer PRIMARY KEY CHECK (version > 0),"
                     " name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     eb, "create schema_migrations");
    int current = 0;
    if (rc == 0) {
        r = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            current = atoi(PQgetvalue(r, 0, 0));
        else
            rc = gw_errf(eb, GW_EDB, "read schema_migrations: %s", PQresultErrorMessage(r));
        PQclear(r);
    }
    if (rc == 0 && current > latest)
        rc = gw_errf(eb, GW_ECONFLICT,
                     "database schema version %d is newer than this gateway knows (%d): "
                     "refusing to start; upgrade the gateway",
                     current, latest);

    for (size_t i = 0; rc == 0 && i < nfiles; i++) {
        const struct mig_file *m = &files[i];
        char vbuf[16];
        snprintf(vbuf, sizeof(vbuf), "%d", m->version);
        const char *p1[1] = {vbuf};
        r = PQexecParams(pg, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL, p1,
                         NULL, NULL, 0);
        bool done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        PQclear(r);
        if (done)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, m->name);
        char *sql = read_file(path, eb);
        if (!sql) {
            rc = GW_EINVAL;
            break;
        }
        /* One transaction per file: a failing migration leaves no trace. */
        rc = exec_ok(pg, "BEGIN", eb, "begin");
        if (rc == 0) {
            r = PQexec(pg, sql);
            if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
                rc = gw_errf(eb, GW_EDB, "migration %s failed: %s", m->name,
                             PQresultErrorMessage(r));
            PQclear(r);
        }
        if (rc == 0) {
            const char *p2[2] = {vbuf, m->name};
            r = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                             2, NULL, p2, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                rc = gw_errf(eb, GW_EDB, "record migration %s: %s", m->name,
                             PQresultErrorMessage(r));
            PQclear(r);
        }
        if (rc == 0)
            rc = exec_ok(pg, "COMMIT", eb, "commit");
        if (rc != 0) {
            r = PQexec(pg, "ROLLBACK");
            PQclear(r);
        } else {
            log_kv(LOG_LEVEL_INFO, NULL, "db.migrate", "applied migration", "file", m->name,
                   NULL);
        }
        free(sql);
    }
    if (rc == 0 && node_id && *node_id) {
        /* One database per node: claim it, or refuse another node's. */
        const char *p1[1] = {node_id};
        r = PQexecParams(pg,
                         "WITH c AS (INSERT INTO t_site (node_id) VALUES ($1)"
                         " ON CONFLICT (one) DO NOTHING RETURNING node_id, install_id)"
                         " SELECT node_id, install_id FROM c"
                         " UNION ALL SELECT node_id, install_id FROM t_site LIMIT 1",
                         1, NULL, p1, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            rc = gw_errf(eb, GW_EDB, "read t_site: %s", PQresultErrorMessage(r));
        else if (strcmp(PQgetvalue(r, 0, 0), node_id) != 0)
            rc = gw_errf(eb, GW_ECONFLICT,
                         "this database belongs to node %.64s, and this gateway is node %.64s: "
                         "refusing to start (one database per node; check db.dsn and node_id; "
                         "to rename the node, UPDATE t_site SET node_id = '...')",
                         PQgetvalue(r, 0, 0), node_id);
        else if (install_id)
            snprintf(install_id, install_cap, "%s", PQgetvalue(r, 0, 1));
        PQclear(r);
    }
    r = PQexec(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
    PQclear(r);
    PQfinish(pg);
    free_migrations(files, nfiles);
    if (rc == 0 && version)
        *version = latest;
    return rc;
}

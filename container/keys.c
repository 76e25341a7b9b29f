/*
 * keys.c - node key rotation and retirement.  See keys.h.
 */
#include "keys.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gateway/app.h"
#include "gateway/cfg.h"
#include "container/attest.h"
#include "gateway/db.h"
#include "gateway/log.h"

struct keys {
    struct gw_app *app;
    struct event *activate; /* fires when the next key starts signing */
    struct event *sweep;    /* drops expired retired keys */
};

static long long now_s(void)
{
    return (long long)time(NULL);
}

static void on_db_done(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)res;
    (void)sqlstate;
    if (err)
        log_kv(LOG_LEVEL_WARN, NULL, "attest.key", (const char *)arg, "err", errmsg, NULL);
}

/*
 * The active key is the one row with retired_at NULL: any other active row
 * is retired (withdrawn too when the rotation was for a compromise), then
 * this one is inserted.  The INSERT reads the UPDATE's result so the two run
 * in that order.
 */
static void record_active(struct keys *k, bool withdrawn)
{
    struct gw_app *app = k->app;
    char *jwk = attest_public_jwk_text(app->attest);
    static const char sql[] =
        "WITH r AS (UPDATE t_attest_key SET retired_at = now(),"
        "  not_after = CASE WHEN $4 THEN now() ELSE not_after END"
        "  WHERE retired_at IS NULL AND kid <> $1 RETURNING 1)"
        " INSERT INTO t_attest_key (kid, public_jwk, private_key_path)"
        " SELECT $1, $2::jsonb, $3 FROM (SELECT count(*) FROM r) AS done"
        " ON CONFLICT (kid) DO NOTHING";
    const char *p[4] = {attest_kid(app->attest), jwk, attest_key_path(app->attest),
                        withdrawn ? "true" : "false"};
    if (db_query(app->db, sql, 4, p, on_db_done, "cannot record the node key", NULL) != 0)
        log_kv(LOG_LEVEL_WARN, NULL, "attest.key", "database unavailable", NULL);
    free(jwk);
}

static void on_retired(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)sqlstate;
    struct keys *k = arg;
    if (err) {
        log_kv(LOG_LEVEL_WARN, NULL, "attest.key", "cannot load retired keys", "err", errmsg, NULL);
        return;
    }
    for (int i = 0; i < db_res_rows(res); i++) {
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        if (attest_add_retired(k->app->attest, db_res_get(res, i, 0),
                               atoll(db_res_get(res, i, 1)), &eb) != 0)
            log_kv(LOG_LEVEL_WARN, NULL, "attest.key", "a retired key is unusable", "err", eb.msg,
                   NULL);
    }
}

void keys_startup(struct keys *k)
{
    struct gw_app *app = k->app;
    record_active(k, false);
    /* Keys retired within KEYS_KEEP_S still verify the tokens they signed;
     * withdrawn ones (not_after set) never come back. */
    static const char sql[] =
        "SELECT public_jwk::text, extract(epoch FROM retired_at)::bigint FROM t_attest_key"
        " WHERE retired_at > now() - make_interval(secs => $2) AND not_after IS NULL"
        " AND kid <> $1";
    char keep[24];
    snprintf(keep, sizeof(keep), "%d", KEYS_KEEP_S);
    const char *p[2] = {attest_kid(app->attest), keep};
    if (db_query(app->db, sql, 2, p, on_retired, k, NULL) != 0)
        log_kv(LOG_LEVEL_WARN, NULL, "attest.key", "database unavailable", NULL);
}

static int activate(struct keys *k, bool withdraw, struct gw_errbuf *eb)
{
    struct gw_app *app = k->app;
    char oldkid[80];
    snprintf(oldkid, sizeof(oldkid), "%s", attest_kid(app->attest));
    int rc = attest_rotate_activate(app->attest, withdraw, now_s(), eb);
    if (rc != 0) {
        log_kv(LOG_LEVEL_ERROR, NULL, "attest.key", "key rotation failed", "err", eb->msg, NULL);
        return rc;
    }
    log_kv(LOG_LEVEL_INFO, NULL, "attest.key", withdraw ? "new key active; old key withdrawn"
                                                        : "new key active; old key retired",
           "kid", attest_kid(app->attest), "old_kid", oldkid, NULL);
    record_active(k, withdraw);
    return 0;
}

static void on_activate(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    (void)activate(arg, false, &eb); /* logged; the next key stays published */
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct keys *k = arg;
    size_t n = attest_expire(k->app->attest, now_s(), KEYS_KEEP_S);
    if (n)
        log_kv(LOG_LEVEL_INFO, NULL, "attest.key", "retired keys left the JWKS", NULL);
}

struct keys *keys_new(struct gw_app *app)
{
    struct keys *k = gw_xcalloc(1, sizeof(*k));
    k->app = app;
    k->activate = evtimer_new(app->base, on_activate, k);
    k->sweep = event_new(app->base, -1, EV_PERSIST, on_sweep, k);
    struct timeval minute = {60, 0};
    event_add(k->sweep, &minute);
    /* A rotation pending at the last stop publishes for a full period again. */
    if (attest_next_kid(app->attest)) {
        struct timeval tv = {app->cfg->attest_key_publish_s, 0};
        event_add(k->activate, &tv);
    }
    return k;
}

void keys_free(struct keys *k)
{
    if (!k)
        return;
    event_free(k->activate);
    event_free(k->sweep);
    free(k);
}

int keys_rotate(struct keys *k, bool now, int *activate_in_s, struct gw_errbuf *eb)
{
    struct gw_app *app = k->app;
    bool pending = attest_next_kid(app->attest) != NULL;
    int rc = attest_rotate_begin(app->attest, eb);
    if (rc != 0)
        return rc;
    if (now) {
        event_del(k->activate);
        *activate_in_s = 0;
        return activate(k, true, eb);
    }
    if (!pending) {
        struct timeval tv = {app->cfg->attest_key_publish_s, 0};
        event_add(k->activate, &tv);
        log_kv(LOG_LEVEL_INFO, NULL, "attest.key", "next key published", "kid",
               attest_next_kid(app->attest), NULL);
    }
    struct timeval left;
    *activate_in_s = 0;
    if (evtimer_pending(k->activate, &left)) {
        struct timeval cur;
        event_base_gettimeofday_cached(app->base, &cur);
        long long s = (long long)left.tv_sec - cur.tv_sec;
        *activate_in_s = s > 0 ? (int)s : 0;
    }
    return 0;
}

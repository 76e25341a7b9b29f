/*
 * app.h - the process: one struct that owns the loop and every long-lived
 * component, passed explicitly to whoever needs them (no mutable globals).
 */
#ifndef GW_GATEWAY_APP_H
#define GW_GATEWAY_APP_H

#include <stdbool.h>

struct event_base;
struct gw_cfg;
struct db_pool;
struct httpc;
struct metrics;
struct server;

struct gw_app {
    struct event_base *base;
    struct gw_cfg *cfg;       /* current config; replaced whole on SIGHUP */
    char *cfg_path;           /* NULL when running on defaults + environment */
    struct db_pool *db;
    struct httpc *httpc;
    struct metrics *metrics;
    struct server *server;
    int schema_version;       /* newest migration this binary ships */
    bool draining;            /* SIGTERM seen: /readyz says 503, no new work */
    long long started_ms;     /* wall clock at start, for build info */
};

#endif

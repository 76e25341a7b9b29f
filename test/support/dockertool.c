/*
 * dockertool.c - drive container/docker.c against a real engine, for the
 * integration tests and the driver benchmark.
 *
 *   dockertool HOST ping
 *   dockertool HOST run IMAGE N PARALLEL [EXIT_CODE]
 *       create (host network) -> wait(next-exit) armed -> start -> inspect -> remove,
 *       N containers, PARALLEL in flight; the command exits EXIT_CODE (default 0).
 *       Prints containers=N ok=K failed=F seconds=S per_container_ms=X rate=R/s
 *   dockertool HOST logs IMAGE      run one container that writes to stdout and stderr
 *   dockertool HOST inspect NAME    inspect; prints the error mapping for a missing one
 *   dockertool HOST events LABEL SECONDS
 *       follow /events for containers with LABEL (k=v) for SECONDS; prints
 *       one line per event: "<Action> <container name>"
 */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/docker.h"
#include "gateway/compat.h"
#include "gateway/httpc.h"
#include "gateway/json.h"

struct tool {
    struct event_base *base;
    struct docker *d;
    const char *image;
    int total, parallel, started, done, ok, failed;
    int exit_code;
    const char *cmd_mode; /* "exit" or "logs" */
    char logs[65536];
    struct docker_call *ev_call; /* the events stream, until it ends */
};

struct one {
    struct tool *t;
    char name[64];
    char id[80];
    int exit_code;
};

static void next(struct tool *t);

static void finish(struct one *o, bool good)
{
    struct tool *t = o->t;
    t->done++;
    if (good)
        t->ok++;
    else
        t->failed++;
    free(o);
    if (t->done == t->total)
        event_base_loopbreak(t->base);
    else
        next(t);
}

static void on_removed(void *arg, const struct docker_result *r)
{
    struct one *o = arg;
    finish(o, r->err == 0 && o->exit_code == o->t->exit_code);
}

static void on_logs(void *arg, const struct docker_result *r)
{
    struct one *o = arg;
    if (!r->err)
        snprintf(o->t->logs, sizeof(o->t->logs), "%.*s", (int)r->text_len, r->text);
    if (docker_container_remove(o->t->d, o->id, on_removed, o) != 0)
        finish(o, false);
}

static void on_inspected(void *arg, const struct docker_result *r)
{
    struct one *o = arg;
    const cJSON *st = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "State") : NULL;
    const cJSON *ec = st ? cJSON_GetObjectItemCaseSensitive(st, "ExitCode") : NULL;
    o->exit_code = cJSON_IsNumber(ec) ? ec->valueint : -1;
    int rc = strcmp(o->t->cmd_mode, "logs") == 0
                 ? docker_container_logs(o->t->d, o->id, 100, on_logs, o)
                 : docker_container_remove(o->t->d, o->id, on_removed, o);
    if (rc != 0)
        finish(o, false);
}

static void on_waited(void *arg, const struct docker_result *r)
{
    struct one *o = arg;
    if (r->err) {
        fprintf(stderr, "wait: %s\n", r->msg);
        finish(o, false);
        return;
    }
    if (docker_container_inspect(o->t->d, o->id, on_inspected, o) != 0)
        finish(o, false);
}

static void on_started(void *arg, const struct docker_result *r)
{
    (void)arg;
    if (r->err)
        fprintf(stderr, "start: %s\n", r->msg); /* the wait reports the failure */
}

static void on_armed(void *arg)
{
    struct one *o = arg;
    if (docker_container_start(o->t->d, o->id, on_started, o) != 0)
        fprintf(stderr, "start refused\n");
}

static void on_created(void *arg, const struct docker_result *r)
{
    struct one *o = arg;
    const cJSON *id = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "Id") : NULL;
    if (r->err || !cJSON_IsString(id)) {
        fprintf(stderr, "create: %s\n", r->msg);
        finish(o, false);
        return;
    }
    snprintf(o->id, sizeof(o->id), "%s", id->valuestring);
    if (docker_container_wait(o->t->d, o->id, "next-exit", on_armed, on_waited, o, NULL) != 0)
        finish(o, false);
}

static void next(struct tool *t)
{
    while (t->started < t->total && t->started - t->done < t->parallel) {
        struct one *o = gw_xcalloc(1, sizeof(*o));
        o->t = t;
        snprintf(o->name, sizeof(o->name), "dockertool-%d-%d", (int)getpid(), t->started++);
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "Image", t->image);
        /* DOCKERTOOL_IMAGE_CMD=1: run the image's own command (images
         * without a shell, like the demo provider). */
        const char *own = getenv("DOCKERTOOL_IMAGE_CMD");
        cJSON *cmd = own && *own == '1' ? cJSON_CreateArray() : cJSON_AddArrayToObject(b, "Cmd");
        char sh[128];
        if (strcmp(t->cmd_mode, "logs") == 0)
            snprintf(sh, sizeof(sh), "echo out-line; echo err-line 1>&2; exit %d", t->exit_code);
        else
            snprintf(sh, sizeof(sh), "exit %d", t->exit_code);
        cJSON_AddItemToArray(cmd, cJSON_CreateString("/bin/sh"));
        cJSON_AddItemToArray(cmd, cJSON_CreateString("-c"));
        cJSON_AddItemToArray(cmd, cJSON_CreateString(sh));
        if (own && *own == '1')
            cJSON_Delete(cmd);
        cJSON *labels = cJSON_AddObjectToObject(b, "Labels");
        cJSON_AddStringToObject(labels, "org.bfia.test", "1");
        cJSON *hc = cJSON_AddObjectToObject(b, "HostConfig");
        cJSON_AddStringToObject(hc, "NetworkMode", "host");
        int rc = docker_container_create(t->d, o->name, b, on_created, o);
        cJSON_Delete(b);
        if (rc != 0)
            finish(o, false);
    }
}

static void on_ping(void *arg, const struct docker_result *r)
{
    struct tool *t = arg;
    if (r->err)
        printf("error: %s\n", r->msg);
    else
        printf("version=%s\n", r->msg);
    t->ok = r->err == 0;
    event_base_loopbreak(t->base);
}

static void on_inspect_only(void *arg, const struct docker_result *r)
{
    struct tool *t = arg;
    printf("err=%s status=%ld msg=%s\n", gw_strerror(r->err), r->status, r->msg);
    event_base_loopbreak(t->base);
}

static void on_event(void *arg, const cJSON *ev)
{
    (void)arg;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(ev, "Action");
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(ev, "Actor");
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(actor, "Attributes");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(attrs, "name");
    printf("%s %s\n", cJSON_IsString(act) ? act->valuestring : "?",
           cJSON_IsString(name) ? name->valuestring : "?");
    fflush(stdout);
}

static void on_events_end(void *arg, const struct docker_result *res)
{
    struct tool *t = arg;
    t->ev_call = NULL;
    if (res->err)
        fprintf(stderr, "events ended: %s\n", res->msg);
    event_base_loopbreak(t->base);
}

static void on_events_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(((struct tool *)arg)->base);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dockertool HOST ping|run|logs|inspect ...\n");
        return 2;
    }
    json_init();
    struct tool t;
    memset(&t, 0, sizeof(t));
    t.base = event_base_new();
    struct httpc *hc = httpc_new(t.base);
    struct gw_errbuf eb;
    struct docker_opts o = {.host = argv[1]};
    t.d = docker_new(hc, NULL, &o, &eb);
    if (!t.d) {
        fprintf(stderr, "%s\n", eb.msg);
        return 2;
    }
    int rc = 0;
    long long t0 = gw_now_mono_us();
    if (strcmp(argv[2], "ping") == 0) {
        rc = docker_ping(t.d, on_ping, &t);
        if (!rc)
            event_base_dispatch(t.base);
        rc = t.ok ? 0 : 1;
    } else if ((strcmp(argv[2], "run") == 0 && argc >= 6) || (strcmp(argv[2], "logs") == 0 && argc >= 4)) {
        bool logs = strcmp(argv[2], "logs") == 0;
        t.image = argv[3];
        t.total = logs ? 1 : atoi(argv[4]);
        t.parallel = logs ? 1 : atoi(argv[5]);
        t.exit_code = logs ? 0 : (argc > 6 ? atoi(argv[6]) : 0);
        t.cmd_mode = logs ? "logs" : "exit";
        if (t.total <= 0 || t.parallel <= 0)
            return 2;
        next(&t);
        event_base_dispatch(t.base);
        double secs = (double)(gw_now_mono_us() - t0) / 1e6;
        if (logs)
            printf("%s", t.logs);
        else
            printf("containers=%d ok=%d failed=%d seconds=%.2f per_container_ms=%.0f rate=%.2f/s\n",
                   t.total, t.ok, t.failed, secs, secs * 1000 / t.total, t.total / secs);
        rc = t.failed ? 1 : 0;
    } else if (strcmp(argv[2], "events") == 0 && argc >= 5) {
        rc = docker_events(t.d, argv[3], on_event, on_events_end, &t, &t.ev_call);
        if (!rc) {
            struct event *tm = evtimer_new(t.base, on_events_timer, &t);
            struct timeval tv = {atoi(argv[4]), 0};
            evtimer_add(tm, &tv);
            event_base_dispatch(t.base);
            docker_cancel(t.ev_call);
            event_free(tm);
        }
    } else if (strcmp(argv[2], "inspect") == 0 && argc >= 4) {
        rc = docker_container_inspect(t.d, argv[3], on_inspect_only, &t);
        if (rc) {
            printf("err=%s status=0 msg=refused before any I/O\n", gw_strerror(rc));
            rc = 0;
        } else {
            event_base_dispatch(t.base);
        }
    } else {
        fprintf(stderr, "bad arguments\n");
        rc = 2;
    }
    docker_free(t.d);
    httpc_free(hc);
    event_base_free(t.base);
    return rc;
}

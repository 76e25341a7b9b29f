/*
 * fakepeer.c - a scripted BFIA partner for profile tests (a fake only to
 * stand in for a FATE-Flow or Kuscia node we cannot run here).
 *
 *   fakepeer PORT PROFILE LOGFILE
 *
 * PROFILE kuscia answers success as {"code":200,"msg":"","data":{...}};
 * fate-flow answers {"code":0,"msg":"success"} (no data, as FATE-Flow's
 * job/create does).  Every request is appended to LOGFILE as one JSON line
 * {method, path, x_node_id, protocol, body}.  task/poll answers SUCCESS for any task;
 * kuscia refuses a poll with an empty role as Kuscia does (code 400,
 * "parameter role can't be empty"), and kuscia-refuse refuses every poll
 * (code 400, "failed to find the task"): a party that answers but never
 * about the task.
 *
 *   fakepeer PORT PROFILE LOGFILE [RULES]
 *
 * RULES scripts replies per path: a comma-separated list of
 * "<path suffix>=<action>", the first match wins.  Actions: "refuse" (code
 * 1, "refused by script"), "delay:MS" (the usual answer, MS milliseconds
 * later, without blocking the loop), "refuse-delay:MS" (both), "status:S"
 * (a task/poll answered with status S instead of SUCCESS).  Example:
 * "task/start=delay:3000,task/poll=status:RUNNING".  A partner that answers slowly or refuses is how
 * the scheduler's reply-ordering races are reproduced (t_races).
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *profile;
static const char *rules = "";
static FILE *reqlog;
static struct event_base *base;

/* The action for uri: *delay_ms and *refuse from the first matching rule. */
static void rule_for(const char *uri, long *delay_ms, bool *refuse, char *status, size_t cap)
{
    *delay_ms = 0;
    *refuse = false;
    *status = '\0';
    const char *q = strchr(uri, '?');
    size_t ulen = q ? (size_t)(q - uri) : strlen(uri);
    const char *r = rules;
    while (*r) {
        const char *end = strchr(r, ',');
        size_t n = end ? (size_t)(end - r) : strlen(r);
        const char *eq = memchr(r, '=', n);
        if (eq) {
            size_t plen = (size_t)(eq - r);
            if (plen <= ulen && memcmp(uri + ulen - plen, r, plen) == 0) {
                const char *act = eq + 1;
                size_t alen = n - plen - 1;
                const char *colon = memchr(act, ':', alen);
                if (alen >= 7 && strncmp(act, "status:", 7) == 0) {
                    size_t sl = alen - 7 < cap - 1 ? alen - 7 : cap - 1;
                    memcpy(status, act + 7, sl);
                    status[sl] = '\0';
                    return;
                }
                if (alen >= 6 && strncmp(act, "refuse", 6) == 0)
                    *refuse = true;
                if (colon)
                    *delay_ms = strtol(colon + 1, NULL, 10);
                return;
            }
        }
        r += n;
        if (*r == ',')
            r++;
    }
}

struct later {
    struct evhttp_request *req;
    char *reply;
    struct event *ev;
};

static void send_json(struct evhttp_request *req, const char *reply)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, reply, strlen(reply));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct later *l = arg;
    send_json(l->req, l->reply);
    event_free(l->ev);
    free(l->reply);
    free(l);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void on_req(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *body = calloc(1, n + 1);
    evbuffer_copyout(in, body, n);
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *node = evhttp_find_header(h, "x-node-id");
    if (!node)
        node = evhttp_find_header(h, "x_node_id");
    fprintf(reqlog, "{\"method\":\"%s\",\"path\":",
            evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" : "POST");
    json_str(reqlog, uri);
    fprintf(reqlog, ",\"x_node_id\":");
    json_str(reqlog, node ? node : "");
    const char *proto = evhttp_find_header(h, "x-interconn-protocol");
    fprintf(reqlog, ",\"protocol\":");
    json_str(reqlog, proto ? proto : "");
    fprintf(reqlog, ",\"body\":");
    json_str(reqlog, body);
    fprintf(reqlog, "}\n");
    fflush(reqlog);
    bool refuse = strcmp(profile, "kuscia-refuse") == 0;
    bool kus = refuse || strcmp(profile, "kuscia") == 0;
    /* Kuscia's decoder: the role must be present and non-empty */
    bool no_role = strstr(body, "\"role\":\"\"") != NULL || strstr(body, "\"role\"") == NULL;
    free(body);
    const char *reply;
    if (strstr(uri, "/task/poll") && refuse)
        reply = "{\"code\":400,\"msg\":\"failed to find the task\",\"data\":null}";
    else if (strstr(uri, "/task/poll") && kus && no_role)
        reply = "{\"code\":400,\"message\":\"parameter role can't be empty\"}";
    else if (strstr(uri, "/task/poll"))
        reply = kus ? "{\"code\":200,\"msg\":\"\",\"data\":{\"status\":\"SUCCESS\"}}"
                    : "{\"code\":0,\"msg\":\"success\",\"data\":{\"status\":\"SUCCESS\"}}";
    else
        reply = kus ? "{\"code\":200,\"msg\":\"\",\"data\":null}" : "{\"code\":0,\"msg\":\"success\"}";
    long delay_ms;
    bool scripted_refusal;
    char status[32], sbuf[128];
    rule_for(uri, &delay_ms, &scripted_refusal, status, sizeof(status));
    if (scripted_refusal)
        reply = "{\"code\":1,\"msg\":\"refused by script\",\"data\":{}}";
    if (*status) {
        snprintf(sbuf, sizeof(sbuf), "{\"code\":%d,\"msg\":\"success\",\"data\":{\"status\":\"%s\"}}",
                 kus ? 200 : 0, status);
        reply = sbuf;
    }
    if (delay_ms <= 0) {
        send_json(req, reply);
        return;
    }
    struct later *l = calloc(1, sizeof(*l));
    l->req = req;
    l->reply = strdup(reply);
    l->ev = evtimer_new(base, on_later, l);
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(l->ev, &tv);
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: fakepeer PORT kuscia|kuscia-refuse|fate-flow LOGFILE [RULES]\n");
        return 2;
    }
    profile = argv[2];
    if (argc == 5)
        rules = argv[4];
    reqlog = fopen(argv[3], "a");
    if (!reqlog)
        return 1;
    base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(http, on_req, NULL);
    if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1])) != 0) {
        fprintf(stderr, "fakepeer: cannot listen on %s\n", argv[1]);
        return 1;
    }
    event_base_dispatch(base);
    evhttp_free(http);
    event_base_free(base);
    fclose(reqlog);
    return 0;
}

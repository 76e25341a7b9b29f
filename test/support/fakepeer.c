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
static FILE *reqlog;

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
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, reply, strlen(reply));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fakepeer PORT kuscia|kuscia-refuse|fate-flow LOGFILE\n");
        return 2;
    }
    profile = argv[2];
    reqlog = fopen(argv[3], "a");
    if (!reqlog)
        return 1;
    struct event_base *base = event_base_new();
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

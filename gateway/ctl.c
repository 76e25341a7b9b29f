/*
 * ctl.c - bfiactl, the command-line client of a gateway node.
 *
 * Blocking libcurl is fine here: this is a short-lived CLI, not the loop.
 *
 * Exit codes (stable, scripts rely on them):
 *   0  success
 *   1  the gateway answered with a non-zero BFIA code (or not ready)
 *   2  usage error
 *   3  the gateway could not be reached or answered garbage
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/compat.h"
#include "gateway/json.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define CTL_BODY_MAX (64 * 1024 * 1024)

struct ctl {
    const char *url; /* base URL of the node */
    bool json;       /* machine-readable output */
    long timeout_s;
};

struct buf {
    char *p;
    size_t n;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t add = size * nmemb;
    if (b->n + add > CTL_BODY_MAX)
        return 0;
    b->p = gw_xrealloc(b->p, b->n + add + 1);
    memcpy(b->p + b->n, data, add);
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

/* One call; returns an exit code and fills status and out. */
static int call(const struct ctl *c, const char *method, const char *path, const char *body,
                long *status, struct buf *out)
{
    CURL *h = curl_easy_init();
    if (!h)
        return EXIT_UNREACHABLE;
    char *url = gw_xasprintf("%s%s", c->url, path);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(url);
    if (rc != CURLE_OK) {
        fprintf(stderr, "bfiactl: cannot reach %s: %s\n", c->url,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return EXIT_UNREACHABLE;
    }
    return EXIT_OK;
}

/* Call an endpoint answering the BFIA envelope and print data. */
static int call_envelope(const struct ctl *c, const char *method, const char *path,
                         const char *body)
{
    long status = 0;
    struct buf out = {NULL, 0};
    int rc = call(c, method, path, body, &status, &out);
    if (rc != EXIT_OK) {
        free(out.p);
        return rc;
    }
    struct gw_errbuf eb;
    cJSON *root = json_parse(out.p ? out.p : "", out.n, &eb);
    const cJSON *code = root ? cJSON_GetObjectItemCaseSensitive(root, "code") : NULL;
    if (!root || !cJSON_IsNumber(code)) {
        fprintf(stderr, "bfiactl: %s answered HTTP %ld without a BFIA envelope\n", c->url, status);
        cJSON_Delete(root);
        free(out.p);
        return EXIT_UNREACHABLE;
    }
    int ok = code->valueint == 0 || (code->valueint == 200 && status == 200);
    if (c->json) {
        fputs(out.p, stdout);
        fputc('\n', stdout);
    } else {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "msg");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
        if (!ok)
            fprintf(stderr, "error %d: %s\n", code->valueint,
                    cJSON_IsString(msg) ? msg->valuestring : "(no message)");
        if (data && !(cJSON_IsObject(data) && !data->child)) {
            char *s = cJSON_Print(data);
            puts(s);
            cJSON_free(s);
        } else if (ok) {
            puts("ok");
        }
    }
    cJSON_Delete(root);
    free(out.p);
    return ok ? EXIT_OK : EXIT_REFUSED;
}

static int cmd_metrics(const struct ctl *c)
{
    long status = 0;
    struct buf out = {NULL, 0};
    int rc = call(c, "GET", "/metrics", NULL, &status, &out);
    if (rc == EXIT_OK)
        fputs(out.p ? out.p : "", stdout);
    free(out.p);
    return rc == EXIT_OK && status != 200 ? EXIT_REFUSED : rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bfiactl [--url URL] [--json] [--timeout S] COMMAND [ARGS]\n"
            "  health               is the node's loop alive (/healthz)\n"
            "  ready                is the node ready to serve (/readyz: DB, schema, not draining)\n"
            "  version              gateway version, node id, schema version\n"
            "  metrics              Prometheus metrics text\n"
            "  route list           peers in the route table\n"
            "  route get NODE_ID    one peer's route\n"
            "URL defaults to $BFIA_URL or http://127.0.0.1:8080.\n"
            "Exit codes: 0 ok, 1 refused by the gateway, 2 usage, 3 unreachable.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ctl c = {getenv("BFIA_URL") ? getenv("BFIA_URL") : "http://127.0.0.1:8080", false, 30};
    int opt;
    while ((opt = getopt_long(argc, argv, "+u:jt:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u': c.url = optarg; break;
        case 'j': c.json = true; break;
        case 't': c.timeout_s = atol(optarg) > 0 ? atol(optarg) : 30; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    json_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    int rc;
    if (strcmp(cmd, "health") == 0 && nargs == 0) {
        rc = call_envelope(&c, "GET", "/healthz", NULL);
    } else if (strcmp(cmd, "ready") == 0 && nargs == 0) {
        rc = call_envelope(&c, "GET", "/readyz", NULL);
    } else if (strcmp(cmd, "version") == 0 && nargs == 0) {
        rc = call_envelope(&c, "GET", "/version", NULL);
    } else if (strcmp(cmd, "metrics") == 0 && nargs == 0) {
        rc = cmd_metrics(&c);
    } else if (strcmp(cmd, "route") == 0 && nargs == 1 && strcmp(args[0], "list") == 0) {
        rc = call_envelope(&c, "GET", "/v1/platform/route/list", NULL);
    } else if (strcmp(cmd, "route") == 0 && nargs == 2 && strcmp(args[0], "get") == 0) {
        cJSON *b = cJSON_CreateObject();
        json_add_str(b, "node_id", args[1]);
        char *s = json_print(b);
        cJSON_Delete(b);
        rc = call_envelope(&c, "POST", "/v1/platform/route/get", s);
        cJSON_free(s);
    } else {
        usage(stderr);
        rc = EXIT_USAGE;
    }
    curl_global_cleanup();
    return rc;
}

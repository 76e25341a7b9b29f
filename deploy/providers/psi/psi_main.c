/*
 * psi_main.c - ecdh-psi, the BFIA open-algorithm ECDH-PSI component
 * (componentName "ecdh_psi"), one party per container.
 *
 * Contract (spec bfia-control-layer.md §6, bfia-ecdh-psi.md §8, §9): all
 * configuration from the environment (system.*, config.*,
 * runtime.component.*; see psi_config.h for the parameters); data under
 * system.storage (file://); messages through system.transport in dialect B
 * (psi_transport_http.c); the status reported once, at the end, to
 * system.callback with the launch token; the exit code is the outcome:
 *   0 success, 2 bad configuration or parameter, 3 input/output error,
 *   4 the peer or the transport failed, 5 internal error.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "psi_component.h"
#include "psi_config.h"
#include "psi_http.h"
#include "psi_log.h"
#include "psi_run.h"
#include "psi_transport.h"

#ifndef PSI_VERSION
#define PSI_VERSION "1.0.0"
#endif

extern char **environ;

/* JSON string body of s into out (quotes and backslashes escaped, control
 * characters as \u00XX). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
}

/* The launch token: the file the gateway keeps fresh, else the one from
 * the environment (it cannot be refreshed), else none (the gateway then
 * holds the claim until the exit code confirms it). */
static void launch_token(const struct psi_config *c, char *out, size_t cap)
{
    out[0] = '\0';
    if (c->token_file[0]) {
        FILE *f = fopen(c->token_file, "r");
        if (f) {
            size_t n = fread(out, 1, cap - 1, f);
            fclose(f);
            while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
                n--;
            out[n] = '\0';
        }
    }
    if (!out[0])
        snprintf(out, cap, "%s", c->attest_token);
    if (!psi_http_header_safe(out))
        out[0] = '\0';
}

/* POST {"task_id","role","status"} to system.callback, up to 3 tries. */
static void report_status(const struct psi_config *c, const char *status)
{
    if (!c->callback[0]) {
        psi_log(c->self_party, "no system.callback: status %s not reported", status);
        return;
    }
    char err[256];
    struct psi_http_conn *hc = psi_http_conn_new(c->callback, err, sizeof(err));
    if (!hc) {
        psi_log(c->self_party, "system.callback: %s; status %s not reported", err, status);
        return;
    }
    char task[1100], role[200], body[1500], tok[8192], head[10000];
    json_escape(c->task_id, task, sizeof(task));
    json_escape(c->self_party, role, sizeof(role));
    int bl = snprintf(body, sizeof(body), "{\"task_id\":\"%s\",\"role\":\"%s\",\"status\":\"%s\"}",
                      task, role, status);
    launch_token(c, tok, sizeof(tok));
    const char *path = psi_http_conn_path(hc)[0] ? psi_http_conn_path(hc)
                                                 : "/v1/platform/schedule/task/callback";
    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n%s%s%sConnection: close\r\n\r\n",
             path, psi_http_conn_hostport(hc), bl, tok[0] ? "Authorization: Bearer " : "", tok,
             tok[0] ? "\r\n" : "");
    for (int attempt = 0; attempt < 3; attempt++) {
        struct psi_http_resp r;
        if (psi_http_request(hc, head, body, (size_t)bl, 10000, 65536, &r, err, sizeof(err)) == 0) {
            int st = r.status;
            psi_log(c->self_party, "callback %s: HTTP %d %.200s", status, st,
                    r.body ? (const char *)r.body : "");
            psi_http_resp_cleanup(&r);
            if (st == 200)
                break;
        } else {
            psi_log(c->self_party, "callback %s: %s", status, err);
        }
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
    }
    psi_http_conn_free(hc);
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
        printf("ecdh-psi %s (BFIA ECDH-PSI component; %s)\n", PSI_VERSION,
               OpenSSL_version(OPENSSL_VERSION));
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: ecdh-psi [--version]\n"
                        "  configured by the BFIA container environment (system.*, config.*,\n"
                        "  runtime.component.*); see deploy/providers/psi/README.md\n");
        return 2;
    }
    /* a static binary in a bare image: no openssl.cnf to read */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    struct psi_config *c = calloc(1, sizeof(*c));
    if (!c)
        return PSI_FAIL_INTERNAL;
    char err[1024];
    if (psi_config_load(environ, c, err, sizeof(err)) != 0) {
        psi_log(c->self_party[0] ? c->self_party : NULL, "error: %s", err);
        report_status(c, "FAILED");
        free(c);
        return PSI_FAIL_CONFIG;
    }
    psi_log(c->self_party, "ecdh-psi %s: task %s, input %s", PSI_VERSION, c->task_id,
            c->input_path);
    struct psi_transport_http_cfg tc = {c->transport, c->session_id, c->token, c->trace_id,
                                        "BFIA-C",     c->self_node,  c->peer_node, c->self_inst,
                                        c->peer_inst, c->recv_timeout_ms};
    struct psi_transport *t = psi_transport_http_new(&tc, err, sizeof(err));
    if (!t) {
        psi_log(c->self_party, "error: %s", err);
        report_status(c, "FAILED");
        free(c);
        return PSI_FAIL_CONFIG;
    }
    struct psi_component_out o;
    int rc = psi_component_run(c, t, &o, err, sizeof(err));
    psi_transport_free(t);
    char rep[128];
    psi_component_report_json(&o, rep, sizeof(rep));
    if (rc == PSI_FAIL_NONE)
        psi_log(c->self_party, "done in %.1f s: %s; %llu messages sent, %llu received", o.seconds,
                rep, (unsigned long long)o.link.sent, (unsigned long long)o.link.received);
    else
        psi_log(c->self_party, "error: %s", err);
    report_status(c, rc == PSI_FAIL_NONE ? "SUCCESS" : "FAILED");
    free(c);
    return rc;
}

/* test_psi_link.c - the YACL-compatible link layer (spec bfia-ecdh-psi.md
 * §6.3) against a peer scripted byte by byte through the in-process
 * transport: the connect message, keys with their seq suffix, the ACK
 * window of 10, acknowledgements on read, duplicates dropped, chunked
 * messages reassembled, FIN and the finish waits, and bounded failure
 * when the peer goes quiet. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "psi_link.h"
#include "psi_transport.h"
#include "psi_wire.h"

#define OURS "guest.0-host.0"   /* we are rank 0 (guest.0) */
#define THEIRS "host.0-guest.0"

struct fx {
    struct psi_mem_hub *hub;
    struct psi_transport *ours, *peer;
    struct psi_link *l;
};

static void fx_start(struct fx *f, int window, int recv_ms, int fin_ms)
{
    f->hub = psi_mem_hub_new();
    f->ours = psi_transport_mem_new(f->hub);
    f->peer = psi_transport_mem_new(f->hub);
    struct psi_link_opts o;
    psi_link_opts_default(&o);
    o.self_rank = 0;
    o.peer_rank = 1;
    o.send_topic = OURS;
    o.recv_topic = THEIRS;
    o.window = window;
    o.recv_timeout_ms = recv_ms;
    o.connect_timeout_ms = recv_ms;
    o.fin_timeout_ms = fin_ms;
    o.pop_timeout_ms = 50;
    f->l = psi_link_new(f->ours, &o);
    assert_non_null(f->l);
    assert_int_equal(psi_link_start(f->l), 0);
}

static void fx_stop(struct fx *f)
{
    psi_link_free(f->l);
    psi_transport_free(f->ours);
    psi_transport_free(f->peer);
    psi_mem_hub_free(f->hub);
}

/* The scripted peer pushes one PushRequest. */
static void peer_push(struct fx *f, const char *key, const void *val, size_t len, bool chunked,
                      uint64_t total, uint64_t off)
{
    struct psi_wire_push p = {1, key, val, len, chunked, total, off};
    unsigned char *b;
    size_t n;
    char err[128];
    assert_int_equal(psi_wire_push_pack(&p, &b, &n), 0);
    assert_int_equal(f->peer->ops->push(f->peer->impl, THEIRS, b, n, err, sizeof(err)),
                     PSI_TRANSPORT_OK);
    free(b);
}

/* The scripted peer pops what we sent: 1 with *p filled, 0 if nothing came
 * within ms. */
static int peer_pop(struct fx *f, int ms, struct psi_wire_push *p, struct psi_wire_push_msg **m,
                    unsigned char **raw)
{
    size_t n;
    char err[128];
    int rc = f->peer->ops->pop(f->peer->impl, OURS, ms, raw, &n, err, sizeof(err));
    if (rc != PSI_TRANSPORT_GOT)
        return 0;
    assert_int_equal(psi_wire_push_unpack(*raw, n, p, m), 0);
    return 1;
}

static void expect_msg(struct fx *f, const char *key, const char *val)
{
    struct psi_wire_push p;
    struct psi_wire_push_msg *m;
    unsigned char *raw;
    assert_int_equal(peer_pop(f, 5000, &p, &m, &raw), 1);
    assert_int_equal(p.sender_rank, 0);
    assert_string_equal(p.key, key);
    assert_int_equal(p.len, strlen(val));
    assert_memory_equal(p.value, val, p.len);
    psi_wire_push_msg_free(m);
    free(raw);
}

static void connect_both(struct fx *f)
{
    peer_push(f, "connect_1\x01\x02" "0", NULL, 0, false, 0, 0);
    assert_int_equal(psi_link_connect(f->l), 0);
    /* exactly the bytes of §10: PushRequest{sender_rank 0, key "connect_0\x01\x020"} */
    unsigned char *raw;
    size_t n;
    char err[128];
    assert_int_equal(f->peer->ops->pop(f->peer->impl, OURS, 5000, &raw, &n, err, sizeof(err)),
                     PSI_TRANSPORT_GOT);
    unsigned char want[] = {0x12, 0x0c, 'c', 'o', 'n', 'n', 'e', 'c', 't', '_', '0', 1, 2, '0'};
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(raw, want, n);
    free(raw);
}

struct sender_arg {
    struct psi_link *l;
    int n;
    int rc;
};

static void *sender(void *arg)
{
    struct sender_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        char v[16];
        int n = snprintf(v, sizeof(v), "m%d", i + 1);
        unsigned char *b = malloc((size_t)n);
        memcpy(b, v, (size_t)n);
        if (psi_link_send_take(a->l, "root", b, (size_t)n, true) != 0) {
            a->rc = -1;
            return NULL;
        }
    }
    return NULL;
}

static void test_window_acks_fin(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, 10, 5000, 5000);
    connect_both(&f);
    /* 12 throttled sends: 10 go out, the 11th waits for an ACK */
    struct sender_arg a = {f.l, 12, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sender, &a), 0);
    for (int i = 1; i <= 10; i++) {
        char k[64], v[16];
        snprintf(k, sizeof(k), "root:P2P-%d:0->1\x01\x02%d", i, i);
        snprintf(v, sizeof(v), "m%d", i);
        expect_msg(&f, k, v);
    }
    struct psi_wire_push p;
    struct psi_wire_push_msg *m;
    unsigned char *raw;
    assert_int_equal(peer_pop(&f, 300, &p, &m, &raw), 0); /* the window is shut */
    peer_push(&f, "ACK\x01\x02", "3", 1, false, 0, 0);    /* any one ACK opens one slot */
    expect_msg(&f, "root:P2P-11:0->1\x01\x02" "11", "m11");
    assert_int_equal(peer_pop(&f, 300, &p, &m, &raw), 0);
    peer_push(&f, "ACK\x01\x02", "3", 1, false, 0, 0); /* a repeated ACK counts once */
    assert_int_equal(peer_pop(&f, 300, &p, &m, &raw), 0);
    peer_push(&f, "ACK\x01\x02", "1", 1, false, 0, 0);
    expect_msg(&f, "root:P2P-12:0->1\x01\x02" "12", "m12");
    /* as REF's SendAsyncThrottled, the 12th send returns once fewer than 10
     * of messages 1..12 are unacknowledged */
    peer_push(&f, "ACK\x01\x02", "2", 1, false, 0, 0);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);

    /* the peer's messages: acknowledged when read, duplicates dropped, a
     * seq shared by both channels */
    peer_push(&f, "root-0:P2P-1:1->0\x01\x02" "2", "dual", 4, false, 0, 0);
    peer_push(&f, "root:P2P-1:1->0\x01\x02" "1", "hello", 5, false, 0, 0);
    peer_push(&f, "root:P2P-1:1->0\x01\x02" "1", "hello", 5, false, 0, 0); /* a retried push */
    unsigned char *v;
    size_t vl;
    if (psi_link_recv(f.l, "root", &v, &vl) != 0)
        fail_msg("%s", psi_link_error(f.l));
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "hello", 5);
    free(v);
    expect_msg(&f, "ACK\x01\x02", "1");
    assert_int_equal(psi_link_recv(f.l, "root-0", &v, &vl), 0);
    assert_memory_equal(v, "dual", 4);
    free(v);
    expect_msg(&f, "ACK\x01\x02", "2");
    /* a chunked message in three pieces, out of order, one repeated */
    peer_push(&f, "root:P2P-2:1->0\x01\x02" "3", "ghij", 4, true, 10, 6);
    peer_push(&f, "root:P2P-2:1->0\x01\x02" "3", "abc", 3, true, 10, 0);
    peer_push(&f, "root:P2P-2:1->0\x01\x02" "3", "abc", 3, true, 10, 0);
    peer_push(&f, "root:P2P-2:1->0\x01\x02" "3", "def", 3, true, 10, 3);
    assert_int_equal(psi_link_recv(f.l, "root", &v, &vl), 0);
    assert_int_equal(vl, 10);
    assert_memory_equal(v, "abcdefghij", 10);
    free(v);
    expect_msg(&f, "ACK\x01\x02", "3");
    /* a message nobody reads is acknowledged at finish */
    peer_push(&f, "root:P2P-3:1->0\x01\x02" "4", "unread", 6, false, 0, 0);

    /* finish: FIN carries our 12 messages; we wait for the peer's FIN (4)
     * and for ACKs of all 12 */
    struct psi_link_stats st;
    psi_link_get_stats(f.l, &st);
    assert_int_equal(st.duplicates, 1);
    for (int i = 2; i <= 12; i++) {
        char n[16];
        snprintf(n, sizeof(n), "%d", i);
        peer_push(&f, "ACK\x01\x02", n, strlen(n), false, 0, 0);
    }
    peer_push(&f, "FIN\x01\x02", "4", 1, false, 0, 0);
    assert_int_equal(psi_link_finish(f.l), PSI_LINK_DONE);
    /* what we sent last: the ACK of the unread message and our FIN */
    int saw_fin = 0, saw_ack4 = 0;
    while (peer_pop(&f, 50, &p, &m, &raw)) {
        if (strcmp(p.key, "FIN\x01\x02") == 0) {
            assert_int_equal(p.len, 2);
            assert_memory_equal(p.value, "12", 2);
            saw_fin = 1;
        }
        if (strcmp(p.key, "ACK\x01\x02") == 0 && p.len == 1 && p.value[0] == '4')
            saw_ack4 = 1;
        psi_wire_push_msg_free(m);
        free(raw);
    }
    assert_true(saw_fin);
    assert_true(saw_ack4);
    fx_stop(&f);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_quiet_peer_fails_in_bounded_time(void **state)
{
    (void)state;
    struct fx f;
    /* no connect message at all */
    fx_start(&f, 10, 700, 700);
    double t0 = now_s();
    assert_int_equal(psi_link_connect(f.l), -1);
    assert_true(now_s() - t0 < 3.0);
    assert_non_null(strstr(psi_link_error(f.l), "timed out"));
    assert_non_null(strstr(psi_link_error(f.l), "connect_1"));
    fx_stop(&f);

    /* connected, then silence: a receive fails, and so does every later call */
    fx_start(&f, 10, 700, 700);
    connect_both(&f);
    unsigned char *v;
    size_t vl;
    t0 = now_s();
    assert_int_equal(psi_link_recv(f.l, "root", &v, &vl), -1);
    assert_true(now_s() - t0 < 3.0);
    assert_non_null(strstr(psi_link_error(f.l), "root:P2P-1:1->0"));
    unsigned char *b = malloc(1);
    assert_int_equal(psi_link_send_take(f.l, "root", b, 1, true), -1);
    assert_int_equal(psi_link_finish(f.l), -1);
    fx_stop(&f);

    /* no ACKs: a throttled sender gives up after the receive timeout */
    fx_start(&f, 2, 700, 700);
    connect_both(&f);
    struct sender_arg a = {f.l, 5, 0};
    t0 = now_s();
    sender(&a);
    assert_int_equal(a.rc, -1);
    assert_true(now_s() - t0 < 3.0);
    assert_non_null(strstr(psi_link_error(f.l), "acknowledgement"));
    fx_stop(&f);

    /* everything acknowledged but no FIN: finish says so, without failing */
    fx_start(&f, 10, 700, 700);
    connect_both(&f);
    b = malloc(1);
    assert_int_equal(psi_link_send_take(f.l, "root", b, 1, false), 0);
    peer_push(&f, "ACK\x01\x02", "1", 1, false, 0, 0);
    assert_int_equal(psi_link_finish(f.l), PSI_LINK_NO_FIN);
    fx_stop(&f);

    /* FIN announces a message that never comes, ours unacknowledged: failure */
    fx_start(&f, 10, 700, 700);
    connect_both(&f);
    b = malloc(1);
    assert_int_equal(psi_link_send_take(f.l, "root", b, 1, false), 0);
    peer_push(&f, "FIN\x01\x02", "3", 1, false, 0, 0);
    assert_int_equal(psi_link_finish(f.l), -1);
    assert_non_null(strstr(psi_link_error(f.l), "acknowledged 0 of our 1"));
    fx_stop(&f);
}

static void test_protocol_violations(void **state)
{
    (void)state;
    const struct {
        const char *key, *val, *want;
    } cases[] = {
        {"ACK\x01\x02", "x", "malformed ACK"},
        {"ACK\x01\x02", "7", "never sent"},
        {"FIN\x01\x02", "", "malformed FIN"},
        {"root:P2P-1:1->0\x01\x02" "abc", "v", "malformed key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fx f;
        fx_start(&f, 10, 2000, 2000);
        connect_both(&f);
        peer_push(&f, cases[i].key, cases[i].val, strlen(cases[i].val), false, 0, 0);
        unsigned char *v;
        size_t vl;
        assert_int_equal(psi_link_recv(f.l, "root", &v, &vl), -1);
        if (!strstr(psi_link_error(f.l), cases[i].want))
            fail_msg("case %zu: %s", i, psi_link_error(f.l));
        fx_stop(&f);
    }
    /* the same key under two sequence numbers */
    struct fx f;
    fx_start(&f, 10, 2000, 2000);
    connect_both(&f);
    peer_push(&f, "root:P2P-2:1->0\x01\x02" "1", "a", 1, false, 0, 0);
    peer_push(&f, "root:P2P-2:1->0\x01\x02" "2", "b", 1, false, 0, 0);
    unsigned char *v;
    size_t vl;
    assert_int_equal(psi_link_recv(f.l, "root", &v, &vl), -1);
    assert_non_null(strstr(psi_link_error(f.l), "twice"));
    fx_stop(&f);
    /* garbage on the topic is dropped; the run goes on */
    fx_start(&f, 10, 2000, 2000);
    connect_both(&f);
    char err[64];
    assert_int_equal(f.peer->ops->push(f.peer->impl, THEIRS, (const unsigned char *)"\xff\xff", 2, err,
                                       sizeof(err)),
                     PSI_TRANSPORT_OK);
    peer_push(&f, "root:P2P-1:1->0\x01\x02" "1", "ok", 2, false, 0, 0);
    assert_int_equal(psi_link_recv(f.l, "root", &v, &vl), 0);
    assert_memory_equal(v, "ok", 2);
    free(v);
    fx_stop(&f);
    /* a transport that dies fails the link */
    fx_start(&f, 10, 2000, 2000);
    connect_both(&f);
    psi_transport_mem_fail_after(f.ours, 0);
    assert_int_equal(psi_link_recv(f.l, "root", &v, &vl), -1);
    assert_non_null(strstr(psi_link_error(f.l), "transport"));
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_acks_fin),
        cmocka_unit_test(test_quiet_peer_fails_in_bounded_time),
        cmocka_unit_test(test_protocol_violations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

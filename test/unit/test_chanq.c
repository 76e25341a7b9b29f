/* test_chanq.c - channel queues: FIFO order, bounds, waiters and their
 * timeouts, release (remembered), idle expiry, memory accounting.  The clock
 * is a plain number passed to every call. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/chanq.h"

static struct chanq_limits lim(void)
{
    struct chanq_limits l = {
        .session_bytes = 100, .session_msgs = 10, .total_bytes = 250, .total_msgs = 100,
        .max_sessions = 8, .max_topics = 4, .max_waiters = 4, .idle_ms = 1000,
        .released_ms = 5000, .released_max = 3,
    };
    return l;
}

static void *blob(const char *s) { return gw_xstrdup(s); }

static int push_s(struct chanq *q, const char *sess, const char *topic, const char *peer,
                  const char *text, long long now)
{
    struct chanq_addr a = {sess, "", topic, peer};
    void *d = blob(text);
    int rc = chanq_push(q, &a, d, strlen(text), now, now, NULL, NULL, NULL);
    if (rc != CHANQ_OK && rc != CHANQ_WAITING)
        free(d);
    return rc;
}

/* pop without waiting; returns the text (static buffer) or the status name */
static const char *pop_s(struct chanq *q, const char *sess, const char *topic, const char *peer,
                         long long now)
{
    static char out[128];
    struct chanq_addr a = {sess, "", topic, peer};
    void *d;
    size_t n;
    int rc = chanq_pop(q, &a, now, now, NULL, NULL, NULL, &d, &n);
    if (rc != CHANQ_OK)
        return chanq_status_name(rc);
    snprintf(out, sizeof(out), "%.*s", (int)n, (char *)d);
    free(d);
    return out;
}

struct rec {
    int calls;
    int st;
    char text[64];
};

static void on_done(void *arg, int st, void *data, size_t len)
{
    struct rec *r = arg;
    r->calls++;
    r->st = st;
    r->text[0] = '\0';
    if (data) {
        snprintf(r->text, sizeof(r->text), "%.*s", (int)len, (char *)data);
        free(data);
    }
}

static void test_fifo_and_isolation(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    assert_int_equal(push_s(q, "s1", "t", "A", "one", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s1", "t", "A", "two", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s1", "u", "A", "other-topic", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s2", "t", "A", "other-session", 0), CHANQ_OK);
    assert_string_equal(pop_s(q, "s1", "t", "A", 1), "one");
    assert_string_equal(pop_s(q, "s1", "t", "", 1), "two"); /* "" = any peer */
    assert_string_equal(pop_s(q, "s1", "t", "A", 1), "empty");
    assert_string_equal(pop_s(q, "s1", "u", "A", 1), "other-topic");
    assert_string_equal(pop_s(q, "s2", "t", "A", 1), "other-session");
    /* scopes are separate slices */
    struct chanq_addr a = {"s1", "task-1", "t", "A"};
    assert_int_equal(chanq_push(q, &a, blob("scoped"), 6, 2, 2, NULL, NULL, NULL), CHANQ_OK);
    assert_string_equal(pop_s(q, "s1", "t", "", 3), "empty");
    void *d;
    size_t n;
    assert_int_equal(chanq_pop(q, &a, 3, 3, NULL, NULL, NULL, &d, &n), CHANQ_OK);
    assert_int_equal(n, 6);
    free(d);
    struct chanq_stats st;
    chanq_stats(q, &st);
    assert_int_equal(st.msgs, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.sessions, 0); /* empty slices are not kept */
    chanq_free(q);
}

static void test_peer_filter_keeps_order_per_peer(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    assert_int_equal(push_s(q, "s", "t", "A", "a1", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "t", "B", "b1", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "t", "A", "a2", 0), CHANQ_OK);
    assert_string_equal(pop_s(q, "s", "t", "B", 1), "b1");
    assert_string_equal(pop_s(q, "s", "t", "B", 1), "empty");
    assert_string_equal(pop_s(q, "s", "t", "", 1), "a1");
    assert_string_equal(pop_s(q, "s", "t", "A", 1), "a2");
    chanq_free(q);
}

static void test_bounds_and_accounting(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    char big[101];
    memset(big, 'x', 100);
    big[100] = '\0';
    /* larger than a slice can ever hold */
    struct chanq_addr a = {"s", "", "t", "A"};
    void *d = gw_xmalloc(101);
    assert_int_equal(chanq_push(q, &a, d, 101, 0, 1000, on_done, NULL, NULL), CHANQ_TOOBIG);
    free(d);
    /* bytes per slice: 60 + 40 fit, one more byte does not */
    char b60[61], b40[41];
    memset(b60, 'a', 60);
    b60[60] = 0;
    memset(b40, 'b', 40);
    b40[40] = 0;
    assert_int_equal(push_s(q, "s", "t", "A", b60, 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "t", "A", b40, 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "t", "A", "z", 0), CHANQ_FULL);
    struct chanq_stats st;
    chanq_stats(q, &st);
    assert_int_equal(st.bytes, 100);
    assert_int_equal(st.msgs, 2);
    assert_int_equal(st.full, 1);
    /* messages per slice */
    for (int i = 0; i < 10; i++)
        assert_int_equal(push_s(q, "m", "t", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "m", "t", "A", "", 0), CHANQ_FULL);
    /* total bytes: 100 in s, 100 in s2 -> 200; 60 more would pass 250 */
    assert_int_equal(push_s(q, "s2", "t", "A", b60, 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s2", "u", "A", b40, 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s3", "t", "A", b60, 0), CHANQ_FULL);
    chanq_stats(q, &st);
    assert_int_equal(st.bytes, 200);
    assert_int_equal(st.msgs, 14);
    /* topics per slice */
    assert_int_equal(push_s(q, "s2", "v", "A", "1", 0), CHANQ_FULL); /* bytes: 100 already */
    assert_int_equal(push_s(q, "tp", "1", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "tp", "2", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "tp", "3", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "tp", "4", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "tp", "5", "A", "", 0), CHANQ_LIMIT);
    /* slices in total (8): s, m, s2, tp + 4 more */
    assert_int_equal(push_s(q, "x1", "t", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "x2", "t", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "x3", "t", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "x4", "t", "A", "", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "x5", "t", "A", "", 0), CHANQ_LIMIT);
    chanq_stats(q, &st);
    assert_int_equal(st.sessions, 8);
    /* popping gives the bytes back */
    assert_string_equal(pop_s(q, "s", "t", "", 1), b60);
    chanq_stats(q, &st);
    assert_int_equal(st.bytes, 140);
    chanq_free(q); /* frees what is held: ASan checks for leaks */
}

static void test_pop_waiter_woken_and_timeout(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    struct chanq_addr a = {"s", "", "t", "A"};
    struct rec r1 = {0}, r2 = {0}, r3 = {0};
    struct chanq_waiter *w;
    void *d;
    size_t n;
    assert_int_equal(chanq_pop(q, &a, 0, 500, on_done, &r1, &w, &d, &n), CHANQ_WAITING);
    assert_non_null(w);
    struct chanq_addr any = {"s", "", "t", ""};
    assert_int_equal(chanq_pop(q, &any, 0, 800, on_done, &r2, NULL, &d, &n), CHANQ_WAITING);
    struct chanq_addr other = {"s", "", "t", "B"};
    assert_int_equal(chanq_pop(q, &other, 0, 300, on_done, &r3, NULL, &d, &n), CHANQ_WAITING);
    assert_int_equal(chanq_next_deadline(q), 300);
    assert_int_equal(r1.calls + r2.calls + r3.calls, 0); /* never inside the registering call */
    /* a push from A goes straight to the first matching waiter */
    assert_int_equal(push_s(q, "s", "t", "A", "hello", 10), CHANQ_OK);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.st, CHANQ_OK);
    assert_string_equal(r1.text, "hello");
    assert_int_equal(r2.calls, 0);
    struct chanq_stats st;
    chanq_stats(q, &st);
    assert_int_equal(st.msgs, 0);
    assert_int_equal(st.pop_waiters, 2);
    /* deadlines: nothing at 299, r3 at 300, r2 at 800 */
    chanq_tick(q, 299);
    assert_int_equal(r3.calls, 0);
    chanq_tick(q, 300);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.st, CHANQ_TIMEOUT);
    assert_int_equal(chanq_next_deadline(q), 800);
    chanq_tick(q, 900);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.st, CHANQ_TIMEOUT);
    assert_int_equal(chanq_next_deadline(q), -1);
    chanq_stats(q, &st);
    assert_int_equal(st.timeouts, 2);
    assert_int_equal(st.sessions, 0);
    /* a cancelled waiter never hears anything */
    struct rec r4 = {0};
    assert_int_equal(chanq_pop(q, &a, 1000, 2000, on_done, &r4, &w, &d, &n), CHANQ_WAITING);
    chanq_cancel(q, w);
    assert_int_equal(push_s(q, "s", "t", "A", "kept", 1001), CHANQ_OK);
    chanq_tick(q, 5000);
    assert_int_equal(r4.calls, 0);
    assert_string_equal(pop_s(q, "s", "t", "A", 5001), "kept");
    chanq_free(q);
}

static void test_push_waits_for_room(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    l.session_msgs = 2;
    struct chanq *q = chanq_new(&l);
    struct chanq_addr a = {"s", "", "t", "A"};
    assert_int_equal(push_s(q, "s", "t", "A", "1", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "t", "A", "2", 0), CHANQ_OK);
    struct rec p3 = {0}, p4 = {0}, p5 = {0};
    assert_int_equal(chanq_push(q, &a, blob("3"), 1, 0, 1000, on_done, &p3, NULL), CHANQ_WAITING);
    assert_int_equal(chanq_push(q, &a, blob("4"), 1, 0, 100, on_done, &p4, NULL), CHANQ_WAITING);
    struct chanq_stats st;
    chanq_stats(q, &st);
    assert_int_equal(st.push_waiters, 2);
    assert_int_equal(st.wait_bytes, 2);
    /* one pop makes room for exactly the first waiting push */
    assert_string_equal(pop_s(q, "s", "t", "A", 10), "1");
    assert_int_equal(p3.calls, 1);
    assert_int_equal(p3.st, CHANQ_OK);
    assert_int_equal(p4.calls, 0);
    /* a newcomer with room available still queues behind p4 (FIFO) */
    assert_string_equal(pop_s(q, "s", "t", "A", 20), "2");
    assert_int_equal(p4.calls, 1); /* admitted by that pop */
    assert_int_equal(chanq_push(q, &a, blob("5"), 1, 30, 60, on_done, &p5, NULL), CHANQ_WAITING);
    chanq_tick(q, 60);
    assert_int_equal(p5.st, CHANQ_TIMEOUT); /* data freed by the queue: ASan checks */
    assert_string_equal(pop_s(q, "s", "t", "A", 70), "3");
    assert_string_equal(pop_s(q, "s", "t", "A", 70), "4");
    assert_string_equal(pop_s(q, "s", "t", "A", 70), "empty");
    /* a waiting push is handed to a pop waiter when admitted */
    assert_int_equal(push_s(q, "s", "t", "A", "x", 80), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "t", "A", "y", 80), CHANQ_OK);
    struct rec p6 = {0};
    assert_int_equal(chanq_push(q, &a, blob("z"), 1, 80, 500, on_done, &p6, NULL), CHANQ_WAITING);
    /* releasing the topic wakes its waiting pushes */
    chanq_release(q, "s", "", "t", false, 90);
    assert_int_equal(p6.calls, 1);
    assert_int_equal(p6.st, CHANQ_RELEASED); /* release of the topic wakes its pushes */
    chanq_stats(q, &st);
    assert_int_equal(st.wait_bytes, 0);
    assert_int_equal(st.push_waiters, 0);
    chanq_free(q);
}

static void test_total_bound_wait_admitted_from_other_slice(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    l.total_msgs = 2;
    struct chanq *q = chanq_new(&l);
    assert_int_equal(push_s(q, "a", "t", "A", "1", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "b", "t", "A", "2", 0), CHANQ_OK);
    struct chanq_addr c = {"c", "", "t", "A"};
    struct rec r = {0};
    assert_int_equal(chanq_push(q, &c, blob("3"), 1, 0, 1000, on_done, &r, NULL), CHANQ_WAITING);
    assert_string_equal(pop_s(q, "a", "t", "", 1), "1");
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, CHANQ_OK);
    assert_string_equal(pop_s(q, "c", "t", "", 2), "3");
    chanq_free(q);
}

static void test_release_remembered(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    struct chanq_addr a = {"s", "task-1", "t", "A"};
    struct rec pw = {0};
    void *d;
    size_t n;
    assert_int_equal(chanq_push(q, &a, blob("m"), 1, 0, 0, NULL, NULL, NULL), CHANQ_OK);
    struct chanq_addr u = {"s", "task-1", "u", "A"};
    assert_int_equal(chanq_pop(q, &u, 0, 1000, on_done, &pw, NULL, &d, &n), CHANQ_WAITING);
    /* another scope of the same session is not touched */
    struct chanq_addr b = {"s", "task-2", "t", "A"};
    assert_int_equal(chanq_push(q, &b, blob("other"), 5, 0, 0, NULL, NULL, NULL), CHANQ_OK);
    assert_int_equal(chanq_release(q, "s", "task-1", NULL, true, 10), 1);
    assert_int_equal(pw.calls, 1);
    assert_int_equal(pw.st, CHANQ_RELEASED);
    void *x = blob("late");
    assert_int_equal(chanq_push(q, &a, x, 4, 20, 20, NULL, NULL, NULL), CHANQ_RELEASED);
    free(x); /* not taken */
    assert_int_equal(chanq_pop(q, &a, 20, 20, NULL, NULL, NULL, &d, &n), CHANQ_RELEASED);
    assert_true(chanq_is_released(q, "s", "task-1", 20));
    assert_false(chanq_is_released(q, "s", "task-2", 20));
    assert_int_equal(chanq_pop(q, &b, 20, 20, NULL, NULL, NULL, &d, &n), CHANQ_OK);
    free(d);
    /* remembered for released_ms, then forgotten by the sweep */
    assert_false(chanq_is_released(q, "s", "task-1", 5010));
    chanq_sweep(q, 5010);
    struct chanq_stats st;
    chanq_stats(q, &st);
    assert_int_equal(st.released, 0);
    /* a whole session (every scope): the job ended */
    assert_int_equal(chanq_push(q, &b, blob("x"), 1, 6000, 6000, NULL, NULL, NULL), CHANQ_OK);
    assert_int_equal(chanq_release(q, "s", NULL, NULL, true, 6000), 1);
    assert_true(chanq_is_released(q, "s", "any-scope", 6001));
    chanq_stats(q, &st);
    assert_int_equal(st.msgs, 0);
    assert_int_equal(st.refused_released, 2);
    /* at most released_max remembered: the oldest go first */
    chanq_release(q, "r1", "", NULL, true, 6100);
    chanq_release(q, "r2", "", NULL, true, 6200);
    chanq_release(q, "r3", "", NULL, true, 6300);
    assert_false(chanq_is_released(q, "s", "x", 6400));
    assert_true(chanq_is_released(q, "r1", "", 6400));
    chanq_free(q);
}

static void test_idle_expiry(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    assert_int_equal(push_s(q, "held", "t", "A", "data", 0), CHANQ_OK);
    struct chanq_addr w = {"waiting", "", "t", "A"};
    struct rec r = {0};
    void *d;
    size_t n;
    assert_int_equal(chanq_pop(q, &w, 0, 100000, on_done, &r, NULL, &d, &n), CHANQ_WAITING);
    chanq_sweep(q, 999);
    struct chanq_stats st;
    chanq_stats(q, &st);
    assert_int_equal(st.sessions, 2);
    chanq_sweep(q, 1000);
    chanq_stats(q, &st);
    assert_int_equal(st.sessions, 1); /* a slice with a waiter is not idle */
    assert_int_equal(st.msgs, 0);
    assert_int_equal(st.expired, 1);
    /* the expired slice had data: its loss is visible to late traffic */
    assert_int_equal(push_s(q, "held", "t", "A", "late", 1001), CHANQ_RELEASED);
    assert_int_equal(r.calls, 0);
    chanq_free(q); /* the waiter hears CHANQ_GONE */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.st, CHANQ_GONE);
}

static void test_waiter_limit(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    struct chanq_addr a = {"s", "", "t", "A"};
    struct rec r[5] = {{0}};
    void *d;
    size_t n;
    for (int i = 0; i < 4; i++)
        assert_int_equal(chanq_pop(q, &a, 0, 100, on_done, &r[i], NULL, &d, &n), CHANQ_WAITING);
    assert_int_equal(chanq_pop(q, &a, 0, 100, on_done, &r[4], NULL, &d, &n), CHANQ_LIMIT);
    chanq_tick(q, 100);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].st, CHANQ_TIMEOUT);
    chanq_free(q);
}

/* A callback that pushes again (re-entry) is delivered after the outer call
 * finished its own work. */
struct reent {
    struct chanq *q;
    int calls;
};

static void on_reenter(void *arg, int st, void *data, size_t len)
{
    (void)len;
    struct reent *r = arg;
    r->calls++;
    free(data);
    if (st == CHANQ_OK && r->calls == 1)
        assert_int_equal(push_s(r->q, "s", "back", "B", "reply", 5), CHANQ_OK);
}

static void test_reentrant_callback(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    struct reent re = {q, 0};
    struct chanq_addr a = {"s", "", "t", ""};
    void *d;
    size_t n;
    assert_int_equal(chanq_pop(q, &a, 0, 100, on_reenter, &re, NULL, &d, &n), CHANQ_WAITING);
    assert_int_equal(push_s(q, "s", "t", "A", "ping", 1), CHANQ_OK);
    assert_int_equal(re.calls, 1);
    assert_string_equal(pop_s(q, "s", "back", "B", 6), "reply");
    chanq_free(q);
}

/* A full session whose reader waits on another topic: no deadlock. */
static void test_full_session_reader_on_other_topic(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    l.session_msgs = 2;
    struct chanq *q = chanq_new(&l);
    assert_int_equal(push_s(q, "s", "from-c", "C", "c1", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "from-c", "C", "c2", 0), CHANQ_OK);
    /* B's push waits for room; then the reader asks for B's topic */
    struct chanq_addr b = {"s", "", "from-b", "B"};
    struct rec pb = {0};
    assert_int_equal(chanq_push(q, &b, blob("b1"), 2, 0, 1000, on_done, &pb, NULL), CHANQ_WAITING);
    assert_string_equal(pop_s(q, "s", "from-b", "B", 1), "b1");
    assert_int_equal(pb.calls, 1);
    assert_int_equal(pb.st, CHANQ_OK);
    /* a reader already waiting gets a push directly even when the session is full */
    struct chanq_addr rb = {"s", "", "from-b", "B"};
    struct rec r = {0};
    void *d;
    size_t n;
    assert_int_equal(chanq_pop(q, &rb, 2, 1000, on_done, &r, NULL, &d, &n), CHANQ_WAITING);
    assert_int_equal(push_s(q, "s", "from-b", "B", "b2", 3), CHANQ_OK);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.text, "b2");
    struct chanq_stats st;
    chanq_stats(q, &st);
    assert_int_equal(st.msgs, 2); /* C's two, untouched */
    chanq_free(q);
}

static void test_requeue_goes_first(void **state)
{
    (void)state;
    struct chanq_limits l = lim();
    struct chanq *q = chanq_new(&l);
    assert_int_equal(push_s(q, "s", "t", "A", "one", 0), CHANQ_OK);
    assert_int_equal(push_s(q, "s", "t", "A", "two", 0), CHANQ_OK);
    struct chanq_addr a = {"s", "", "t", "A"};
    void *d;
    size_t n;
    assert_int_equal(chanq_pop(q, &a, 1, 1, NULL, NULL, NULL, &d, &n), CHANQ_OK);
    chanq_requeue(q, &a, d, n, 2); /* its reader was gone */
    assert_string_equal(pop_s(q, "s", "t", "A", 3), "one");
    assert_string_equal(pop_s(q, "s", "t", "A", 3), "two");
    chanq_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_isolation),
        cmocka_unit_test(test_peer_filter_keeps_order_per_peer),
        cmocka_unit_test(test_bounds_and_accounting),
        cmocka_unit_test(test_pop_waiter_woken_and_timeout),
        cmocka_unit_test(test_push_waits_for_room),
        cmocka_unit_test(test_total_bound_wait_admitted_from_other_slice),
        cmocka_unit_test(test_release_remembered),
        cmocka_unit_test(test_idle_expiry),
        cmocka_unit_test(test_waiter_limit),
        cmocka_unit_test(test_reentrant_callback),
        cmocka_unit_test(test_full_session_reader_on_other_topic),
        cmocka_unit_test(test_requeue_goes_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_fileio.c - the file I/O thread (gateway/fileio.h): jobs run in
 * order off the loop thread, their results come back on the loop thread
 * and never inside fileio_submit, and a cancelled job never calls back,
 * whether it was still queued or already running, while its context is
 * freed exactly once.  No sleeps: the loop runs until the results arrive.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/fileio.h"

#define N 64

struct order {
    int ran[N];      /* written by the worker, in the order it ran jobs */
    int nran;
    int done[N];     /* written by the loop, in the order results came */
    int ndone;
    pthread_t loop;
    bool in_submit;
    bool wrong_thread;
    struct event_base *base;
};

struct job {
    struct order *o;
    int id;
};

static long long work(void *ctx)
{
    struct job *j = ctx;
    j->o->ran[j->o->nran++] = j->id; /* only the worker writes it */
    return j->id * 10;
}

static void done(void *arg, long long r)
{
    struct job *j = arg;
    struct order *o = j->o;
    if (!pthread_equal(pthread_self(), o->loop) || o->in_submit)
        o->wrong_thread = true;
    assert_int_equal(r, j->id * 10);
    o->done[o->ndone++] = j->id;
    if (o->ndone == N)
        event_base_loopbreak(o->base);
    free(j);
}

static void test_order_and_thread(void **state)
{
    (void)state;
    struct order o;
    memset(&o, 0, sizeof(o));
    o.loop = pthread_self();
    o.base = event_base_new();
    struct fileio *f = fileio_new(o.base);
    for (int i = 0; i < N; i++) {
        struct job *j = calloc(1, sizeof(*j));
        j->o = &o;
        j->id = i;
        o.in_submit = true;
        (void)fileio_submit(f, work, j, done, j);
        o.in_submit = false;
    }
    event_base_dispatch(o.base);
    assert_int_equal(o.ndone, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o.ran[i], i);  /* one FIFO */
        assert_int_equal(o.done[i], i);
    }
    assert_false(o.wrong_thread);
    fileio_free(f);
    event_base_free(o.base);
}

/* ---- cancel -------------------------------------------------------------- */

struct gate {
    int fds[2];       /* the running job waits for a byte */
    int freed;        /* ctx_free calls */
    int called;       /* done calls (must stay 0) */
    int finished;     /* the tail job's done */
    struct event_base *base;
};

static long long blocked_work(void *ctx)
{
    struct gate *g = ctx;
    char b;
    while (read(g->fds[0], &b, 1) < 0)
        ;
    return 1;
}

static long long quick_work(void *ctx)
{
    (void)ctx;
    return 2;
}

static void never(void *arg, long long r)
{
    (void)r;
    ((struct gate *)arg)->called++;
}

static void count_free(void *ctx)
{
    ((struct gate *)ctx)->freed++;
}

static void tail_done(void *arg, long long r)
{
    (void)r;
    struct gate *g = arg;
    g->finished++;
    event_base_loopbreak(g->base);
}

static void test_cancel_queued_and_running(void **state)
{
    (void)state;
    struct gate g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(pipe(g.fds), 0);
    g.base = event_base_new();
    struct fileio *f = fileio_new(g.base);
    struct fileio_job *running = fileio_submit(f, blocked_work, &g, never, &g);
    struct fileio_job *queued = fileio_submit(f, quick_work, &g, never, &g);
    /* The queued one is dropped at once: its context freed now. */
    fileio_cancel(queued, count_free);
    assert_int_equal(g.freed, 1);
    /* The first one may be running (or about to): its context is freed
     * only once the work is surely done with it. */
    fileio_cancel(running, count_free);
    (void)fileio_submit(f, quick_work, &g, tail_done, &g);
    assert_int_equal(write(g.fds[1], "x", 1), 1);
    event_base_dispatch(g.base);
    /* The tail job ran after the cancelled one (FIFO), so its completion
     * was processed too; loop once more for any straggler. */
    event_base_loop(g.base, EVLOOP_NONBLOCK);
    assert_int_equal(g.finished, 1);
    assert_int_equal(g.called, 0);
    assert_int_equal(g.freed, 2);
    fileio_free(f);
    event_base_free(g.base);
    close(g.fds[0]);
    close(g.fds[1]);
}

static void test_sync_path(void **state)
{
    (void)state;
    char path[] = "/tmp/test_fileio.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    assert_int_equal(fileio_sync_path(path), 0);
    unlink(path);
    assert_true(fileio_sync_path(path) < 0); /* gone: -ENOENT */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_thread),
        cmocka_unit_test(test_cancel_queued_and_running),
        cmocka_unit_test(test_sync_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

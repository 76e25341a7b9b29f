/*
 * fileio.c - the file I/O worker thread (see fileio.h).
 *
 * Two queues under one mutex: jobs waiting for the worker, and jobs the
 * worker finished.  The worker writes the eventfd after each finished job;
 * the loop's read callback drains the finished queue.  A job is freed only
 * by the loop, once it is finished (or was never started), so the worker
 * never sees freed memory.
 */
#include "fileio.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "compat.h"

struct fileio_job {
    struct fileio *f;
    fileio_work_fn work;
    void *ctx;
    fileio_done_cb done;
    void *arg;
    long long result;
    bool running;                /* the worker took it (protected by mu) */
    bool cancelled;              /* loop side only */
    void (*ctx_free)(void *ctx); /* set by fileio_cancel */
    struct fileio_job *next;
};

struct fileio {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fileio_job *todo, *todo_tail; /* waiting for the worker */
    struct fileio_job *done, *done_tail; /* finished, for the loop */
    bool stop;
    int efd;
    struct event *ev;
};

static void push(struct fileio_job **head, struct fileio_job **tail, struct fileio_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void *worker(void *arg)
{
    struct fileio *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->todo && !f->stop)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->stop)
            break;
        struct fileio_job *j = f->todo;
        f->todo = j->next;
        if (!f->todo)
            f->todo_tail = NULL;
        j->running = true;
        pthread_mutex_unlock(&f->mu);
        long long r = j->work(j->ctx);
        pthread_mutex_lock(&f->mu);
        j->result = r;
        j->running = false;
        push(&f->done, &f->done_tail, j);
        uint64_t one = 1;
        (void)!write(f->efd, &one, sizeof(one)); /* a full counter still wakes the loop */
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct fileio *f = arg;
    uint64_t n;
    (void)!read(fd, &n, sizeof(n));
    pthread_mutex_lock(&f->mu);
    struct fileio_job *list = f->done;
    f->done = f->done_tail = NULL;
    pthread_mutex_unlock(&f->mu);
    while (list) {
        struct fileio_job *j = list;
        list = j->next;
        if (j->cancelled) {
            if (j->ctx_free)
                j->ctx_free(j->ctx);
        } else {
            j->done(j->arg, j->result);
        }
        free(j);
    }
}

struct fileio *fileio_new(struct event_base *base)
{
    struct fileio *f = gw_xcalloc(1, sizeof(*f));
    f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (f->efd < 0 || pthread_mutex_init(&f->mu, NULL) != 0 ||
        pthread_cond_init(&f->cv, NULL) != 0)
        abort();
    f->ev = event_new(base, f->efd, EV_READ | EV_PERSIST, on_done, f);
    event_add(f->ev, NULL);
    if (pthread_create(&f->th, NULL, worker, f) != 0)
        abort();
    return f;
}

void fileio_free(struct fileio *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL);
    /* The worker is gone: every job is either queued or finished. */
    struct fileio_job *lists[2] = {f->todo, f->done};
    for (int i = 0; i < 2; i++)
        while (lists[i]) {
            struct fileio_job *j = lists[i];
            lists[i] = j->next;
            if (j->cancelled && j->ctx_free)
                j->ctx_free(j->ctx);
            free(j);
        }
    event_free(f->ev);
    close(f->efd);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

struct fileio_job *fileio_submit(struct fileio *f, fileio_work_fn work, void *ctx,
                                 fileio_done_cb done, void *arg)
{
    struct fileio_job *j = gw_xcalloc(1, sizeof(*j));
    j->f = f;
    j->work = work;
    j->ctx = ctx;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&f->mu);
    push(&f->todo, &f->todo_tail, j);
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return j;
}

void fileio_cancel(struct fileio_job *j, void (*ctx_free)(void *ctx))
{
    if (!j)
        return;
    struct fileio *f = j->f;
    pthread_mutex_lock(&f->mu);
    bool queued = false;
    for (struct fileio_job **pp = &f->todo, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            if (f->todo_tail == j)
                f->todo_tail = prev;
            queued = true;
            break;
        }
    }
    if (!queued) {
        /* Running or finished: the loop frees it when it comes back. */
        j->cancelled = true;
        j->ctx_free = ctx_free;
    }
    pthread_mutex_unlock(&f->mu);
    if (queued) {
        if (ctx_free)
            ctx_free(j->ctx);
        free(j);
    }
}

long long fileio_sync_path(void *ctx)
{
    const char *path = ctx;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    long long rc = fsync(fd) == 0 ? 0 : -errno; /* banned-ok: file I/O thread */
    close(fd);
    if (rc != 0)
        return rc;
    /* The directory entry too, so the file is there after a crash. */
    char *dir = gw_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int dfd = open(slash && dir[0] ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (dfd < 0)
        return -errno;
    rc = fsync(dfd) == 0 ? 0 : -errno; /* banned-ok: file I/O thread */
    close(dfd);
    return rc;
}

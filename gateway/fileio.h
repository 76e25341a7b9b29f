/*
 * fileio.h - one worker thread for file I/O that must not run on the loop.
 *
 * fsync/fdatasync wait for the disk (tens of milliseconds, seconds on a busy
 * or network disk), and reading a file of size is no better; the loop must
 * never wait.  Such work is queued here and runs, in order, on a single
 * thread; its result comes back to the loop through an eventfd watched by
 * the event base, and the done callback runs there.  One thread is enough:
 * the work is rare and short, and a FIFO keeps dependent steps ordered
 * (write the file, sync it, then rename it).
 *
 * Contract (STYLE.md 7): fileio_submit returns a job and done runs exactly
 * once, later, on the loop, never inside fileio_submit; fileio_cancel
 * guarantees done will not run.  The work function gets ctx and must touch
 * nothing else that the loop may change or free.  ctx stays the caller's
 * while the job is pending; on cancel, the caller hands it over with a free
 * function, which runs on the loop once the work is surely not using it.
 */
#ifndef GW_GATEWAY_FILEIO_H
#define GW_GATEWAY_FILEIO_H

struct event_base;
struct fileio;
struct fileio_job;

/** Runs on the worker thread: 0 or a result of the caller's choosing (e.g. -errno). */
typedef long long (*fileio_work_fn)(void *ctx);
/** Runs on the loop with what the work returned. */
typedef void (*fileio_done_cb)(void *arg, long long result);

/** Start the worker.  Never NULL (aborts if no thread can be made). */
struct fileio *fileio_new(struct event_base *base);

/**
 * Stop the worker after the job it is running; queued jobs are dropped.
 * Cancelled jobs' contexts are freed; jobs still owned by callers are not
 * (their owners must have cancelled them first).  NULL-safe.  Loop thread.
 */
void fileio_free(struct fileio *f);

/** Queue work(ctx); done(arg, result) later on the loop.  Loop thread. */
struct fileio_job *fileio_submit(struct fileio *f, fileio_work_fn work, void *ctx,
                                 fileio_done_cb done, void *arg);

/**
 * done will not run.  ctx_free(ctx) runs on the loop: now if the work has
 * not started (or is finished), else when it ends.  NULL-safe.  Loop thread.
 */
void fileio_cancel(struct fileio_job *j, void (*ctx_free)(void *ctx));

/* ---- common work functions ------------------------------------------------ */

/**
 * ctx is a NUL-terminated path: open it, fsync, close; then fsync the
 * directory that holds it.  0 or -errno.
 */
long long fileio_sync_path(void *ctx);

#endif

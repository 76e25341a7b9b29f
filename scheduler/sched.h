/*
 * sched.h - the scheduler side of BFIA jobs (t_schedule_job, t_schedule_task).
 *
 * Event-driven: every change that can let a job move (a create, a callback,
 * a poll answer, a task/start reply, an audit decision) "kicks" the job,
 * which runs one pass: read the job and its task rows, then
 *   READY    -> /job/start to every party once, CAS READY -> RUNNING;
 *   RUNNING  -> /task/start for every task whose upstream tasks are all
 *               SUCCESS (CAS on start_sent_at, so never twice), in parallel;
 *               any task FAILED -> stop everywhere, FINISHED/failed;
 *               all SUCCESS -> FINISHED/success.
 * Poll mode polls every party's live tasks every sched.poll_ms; callback
 * mode relies on pushes and polls every sched.backstop_ms as a backstop.
 * A party that cannot be reached makes the job wait with a visible reason
 * and fails it after sched.party_deadline_s.  Loop-thread only.
 */
#ifndef GW_SCHEDULER_SCHED_H
#define GW_SCHEDULER_SCHED_H

struct gw_app;
struct gw_req;
struct sched;

struct sched *sched_new(struct gw_app *app);
void sched_free(struct sched *s);

/** Run a pass of job_id soon (coalesced). */
void sched_kick(struct sched *s, const char *job_id);

/** Start-up: kick every live job this node schedules. */
void sched_resume(struct sched *s, void (*done)(void *arg, int err, const char *msg), void *arg);

/* Handlers (routes/route.c table). */
void sched_create_all(struct gw_req *req);          /* interconn */
void sched_platform_create_all(struct gw_req *req); /* platform: new job id, to the scheduler */
void sched_stop_all(struct gw_req *req);            /* interconn */
void sched_platform_stop_all(struct gw_req *req);   /* platform: to the scheduler */
void sched_status_all(struct gw_req *req);          /* interconn: keyed by task_name */
void sched_platform_status_all(struct gw_req *req); /* platform: keyed by task_id, with detail */
void sched_task_callback(struct gw_req *req);       /* interconn: a partner pushes */
void sched_audit_confirm(struct gw_req *req);
void sched_query_job_list(struct gw_req *req);

#endif

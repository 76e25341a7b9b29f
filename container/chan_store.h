/*
 * chan_store.h - every SQL statement of the transport layer, behind a small
 * interface (so it can move into the scheduler's store later).  Each call
 * starts one query with db_query's contract: 0 and cb once later, or an
 * error and no callback.  cb gets the result view (valid during the call).
 */
#ifndef GW_CONTAINER_CHAN_STORE_H
#define GW_CONTAINER_CHAN_STORE_H

#include "gateway/compat.h"
#include "gateway/db.h"

struct gw_app;

/** One task row: columns status, env (spec->'env' as JSON text). */
int chan_store_task(struct gw_app *app, const char *job, const char *task, const char *role,
                    int index, db_cb cb, void *arg) GW_MUSTCHECK;

/** A job on this node: one row, columns live ('t'/'f'), roles (config->'role' JSON text),
 * rows (number of t_job rows: 0 = unknown job). */
int chan_store_job(struct gw_app *app, const char *job, db_cb cb, void *arg) GW_MUSTCHECK;

/** Rows of a task on this node: columns job_id, ended ('t' when every row is terminal). */
int chan_store_task_ended(struct gw_app *app, const char *task, db_cb cb, void *arg) GW_MUSTCHECK;

/** Of the job ids in jobs_json (a JSON array of strings), those that ended here
 * (every t_job row FINISHED or REJECTED): column job_id. */
int chan_store_jobs_ended(struct gw_app *app, const char *jobs_json, db_cb cb,
                          void *arg) GW_MUSTCHECK;

#endif

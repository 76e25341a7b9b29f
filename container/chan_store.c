/* chan_store.c - the transport layer's SQL (read-only: the transport owns no table). */
#include "chan_store.h"

#include <stdio.h>

#include "gateway/app.h"

int chan_store_task(struct gw_app *app, const char *job, const char *task, const char *role,
                    int index, db_cb cb, void *arg)
{
    static const char sql[] = "SELECT status, (spec->'env')::text FROM t_task"
                              " WHERE job_id = $1 AND task_id = $2 AND role = $3"
                              " AND role_index = $4::int";
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", index);
    const char *p[4] = {job, task, role, idx};
    return db_query(app->db, sql, 4, p, cb, arg, NULL);
}

int chan_store_job(struct gw_app *app, const char *job, db_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT coalesce(bool_or(status NOT IN ('FINISHED', 'REJECTED')), false),"
        " (array_agg((config->'role')::text))[1], count(*) FROM t_job WHERE job_id = $1";
    const char *p[1] = {job};
    return db_query(app->db, sql, 1, p, cb, arg, NULL);
}

int chan_store_task_ended(struct gw_app *app, const char *task, db_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT job_id, bool_and(status IN ('SUCCESS', 'FAILED')) FROM t_task"
        " WHERE task_id = $1 GROUP BY job_id";
    const char *p[1] = {task};
    return db_query(app->db, sql, 1, p, cb, arg, NULL);
}

int chan_store_jobs_ended(struct gw_app *app, const char *jobs_json, db_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT job_id FROM t_job WHERE job_id IN"
        " (SELECT jsonb_array_elements_text($1::jsonb)) GROUP BY job_id"
        " HAVING bool_and(status IN ('FINISHED', 'REJECTED'))";
    const char *p[1] = {jobs_json};
    return db_query(app->db, sql, 1, p, cb, arg, NULL);
}

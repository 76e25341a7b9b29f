-- 0008_push_acks.sql - callback pushes a partner has had acknowledged.
-- In callback mode a partner pushes each change of a task's aggregate
-- status to the job's scheduler (task/callback).  A FATE-Flow scheduler in
-- that mode never polls, so a push lost to a scheduler that was down would
-- leave the job RUNNING there for good: the partner records what the
-- scheduler acknowledged and pushes again (sched.push_retry_s) until the
-- acknowledged status is the current one.
CREATE TABLE t_task_push (
    job_id       bfia_id NOT NULL,
    task_id      bfia_id NOT NULL,
    acked_status task_status,          -- NULL: nothing acknowledged yet
    last_error   text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, task_id)
);
CREATE INDEX t_task_recent ON t_task (status_updated_at);

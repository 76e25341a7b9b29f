-- 0011_job_end_notify.sql - a job ending is heard like a task changing.
--
-- The transport releases a job's sessions when every t_job row of the job
-- on this node has ended; it re-checks on NOTIFY bfia_task (0006).  A job
-- stopped after its tasks had already ended changes no t_task row, so the
-- end of the job itself notifies each of its tasks: late messages for the
-- job are then refused at once (E0000000608) instead of after the sweep.
CREATE FUNCTION bfia_job_end_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bfia_task', t.task_id)
        FROM (SELECT DISTINCT task_id FROM t_task WHERE job_id = NEW.job_id) t;
    RETURN NULL;
END
$$;

CREATE TRIGGER t_job_end_notify AFTER UPDATE OF status ON t_job
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('FINISHED', 'REJECTED'))
    EXECUTE FUNCTION bfia_job_end_notify();

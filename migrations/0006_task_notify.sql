-- 0006_task_notify.sql - tell listeners which task changed.  Every insert,
-- update or delete of a t_task row sends NOTIFY bfia_task with the task_id
-- as payload, at commit.  The gateway's task/poll cache (routes/pollcache.c)
-- listens and forgets that task's answers, so the cache stays correct
-- whoever writes the row: this process, another gateway on the same
-- database, or an operator with psql.  PostgreSQL folds identical
-- notifications of one transaction into one.
CREATE FUNCTION bfia_task_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('bfia_task', OLD.task_id);
    ELSE
        PERFORM pg_notify('bfia_task', NEW.task_id);
        IF TG_OP = 'UPDATE' AND OLD.task_id IS DISTINCT FROM NEW.task_id THEN
            PERFORM pg_notify('bfia_task', OLD.task_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER t_task_notify AFTER INSERT OR UPDATE OR DELETE ON t_task
    FOR EACH ROW EXECUTE FUNCTION bfia_task_notify();

-- TRUNCATE fires no row trigger: an empty payload means "forget everything".
CREATE FUNCTION bfia_task_notify_all() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bfia_task', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER t_task_truncate AFTER TRUNCATE ON t_task
    FOR EACH STATEMENT EXECUTE FUNCTION bfia_task_notify_all();

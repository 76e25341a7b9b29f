-- 0002_status_rules.sql - the status rules of bfia-control-layer.md §3 as SQL
-- functions, so every compare-and-set UPDATE and every aggregation uses the
-- same definition on every code path.

-- Task transitions (FATE-Flow's table): terminal states never move.
CREATE FUNCTION bfia_task_step_ok(from_s text, to_s text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE from_s
        WHEN 'PENDING' THEN to_s IN ('READY', 'RUNNING', 'SUCCESS', 'FAILED')
        WHEN 'READY'   THEN to_s IN ('RUNNING', 'SUCCESS', 'FAILED')
        WHEN 'RUNNING' THEN to_s IN ('SUCCESS', 'FAILED')
        ELSE false END
$$;

-- Job transitions.
CREATE FUNCTION bfia_job_step_ok(from_s text, to_s text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE from_s
        WHEN 'PENDING' THEN to_s IN ('READY', 'REJECTED', 'FINISHED')
        WHEN 'READY'   THEN to_s IN ('RUNNING', 'FINISHED')
        WHEN 'RUNNING' THEN to_s IN ('FINISHED')
        ELSE false END
$$;

-- One task over several parties or roles (§3.3): all equal -> that value,
-- else the first present of FAILED, RUNNING, READY, PENDING, SUCCESS.
CREATE FUNCTION bfia_task_agg(s text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN s IS NULL OR cardinality(s) = 0 THEN NULL
        WHEN 'FAILED'  = ANY (s) THEN 'FAILED'
        WHEN (SELECT count(DISTINCT x) FROM unnest(s) x) = 1 THEN s[1]
        WHEN 'RUNNING' = ANY (s) THEN 'RUNNING'
        WHEN 'READY'   = ANY (s) THEN 'READY'
        WHEN 'PENDING' = ANY (s) THEN 'PENDING'
        ELSE 'SUCCESS' END
$$;

-- The live-task index of the partner side lets reconcile find every row
-- that may own a container; the scheduler finds its live jobs by status.
CREATE INDEX t_task_by_job ON t_task (job_id, task_name);

-- 0005_task_agg_fast.sql - bfia_task_agg without a sub-select.  The same
-- rule (§3.3: all equal -> that value, else the first present of FAILED,
-- RUNNING, READY, PENDING, SUCCESS), but "all equal" is s[1] = ALL (s):
-- statuses are never NULL, so it means count(DISTINCT) = 1.  The
-- sub-select was planned again on every call; every task/poll and
-- status_all pays for this function (pgbench, one indexed row: 8.9k -> 25k
-- statements/s on 2 cores).
CREATE OR REPLACE FUNCTION bfia_task_agg(s text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN s IS NULL OR cardinality(s) = 0 THEN NULL
        WHEN 'FAILED'  = ANY (s) THEN 'FAILED'
        WHEN s[1] = ALL (s) THEN s[1]
        WHEN 'RUNNING' = ANY (s) THEN 'RUNNING'
        WHEN 'READY'   = ANY (s) THEN 'READY'
        WHEN 'PENDING' = ANY (s) THEN 'PENDING'
        ELSE 'SUCCESS' END
$$;

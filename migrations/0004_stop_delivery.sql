-- 0004_stop_delivery.sql - a finished job's job/stop reaches every party
-- even when one was down at the time: the scheduler records who answered
-- and sends it again to the others until they do (within a day).
ALTER TABLE t_schedule_job
    ADD COLUMN stop_acked jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(stop_acked) = 'array');
-- Jobs that ended before this migration are not chased.
UPDATE t_schedule_job SET stop_acked = parties WHERE status IN ('FINISHED', 'REJECTED');
ALTER TABLE t_schedule_job
    ADD COLUMN stop_done boolean GENERATED ALWAYS AS (parties <@ stop_acked) STORED;
CREATE INDEX t_schedule_job_stop_pending ON t_schedule_job (updated_at)
    WHERE NOT stop_done AND status IN ('FINISHED', 'REJECTED');

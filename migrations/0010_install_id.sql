-- 0010_install_id.sql - an installation id, and one source for transitions.
--
-- Two installations may share a node id on one Docker engine (a test
-- deployment next to a production one, or a copy of a data directory).
-- Every task container carries this id as the label org.bfia.install, and
-- start-up reconciliation touches only containers with this installation's
-- label, so one installation never removes another's containers.
ALTER TABLE t_site ADD COLUMN install_id text NOT NULL
    DEFAULT substr(md5(random()::text || clock_timestamp()::text), 1, 16)
    CHECK (install_id ~ '^[0-9a-f]{16}$');

-- Which status may follow which is decided by the tables of
-- scheduler/state.c, which hand every compare-and-set its allowed "from"
-- states: these SQL copies of the same rules are no longer used.
DROP FUNCTION bfia_task_step_ok(text, text);
DROP FUNCTION bfia_job_step_ok(text, text);

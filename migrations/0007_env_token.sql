-- 0007_env_token.sql - the initial launch token T0 (attestation.md 2.6-2.7)
-- is also given in the container's environment (config.attest.token), minted
-- before create and so without the container id.  The environment cannot be
-- refreshed: T0 stays acceptable for the container's run until it expires,
-- next to token_id (the file's token) and prev_token_id.
ALTER TABLE t_task ADD COLUMN env_token_id text;

-- 0003_token_refresh.sql - launch tokens are re-minted while a container
-- runs (attestation.md 2.5): the previous token id stays acceptable for a
-- task callback until that token expires on its own, so a component that
-- read the file just before the refresh is not refused.
ALTER TABLE t_task ADD COLUMN prev_token_id text;

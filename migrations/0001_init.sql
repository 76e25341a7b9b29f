-- 0001_init.sql - the full data model (DESIGN.md "Data model").
--
-- PostgreSQL is the single source of truth.  Constraints make illegal states
-- impossible where the database can see them: statuses are closed sets,
-- outcomes exist only on finished jobs, exit codes only on finished tasks,
-- image references are pinned digests, ids are bounded text.
-- Applied inside one transaction by the gateway's migration runner.

-- Identifiers shared by every table: 1..128 characters, no whitespace or
-- path separators (they end up in container names and storage paths).
CREATE DOMAIN bfia_id AS text
    CHECK (length(VALUE) BETWEEN 1 AND 128 AND VALUE ~ '^[A-Za-z0-9_.:#-]+$' AND VALUE !~ '^\.');

CREATE DOMAIN job_status AS text
    CHECK (VALUE IN ('PENDING', 'READY', 'REJECTED', 'RUNNING', 'FINISHED'));
CREATE DOMAIN task_status AS text
    CHECK (VALUE IN ('PENDING', 'READY', 'RUNNING', 'SUCCESS', 'FAILED'));
CREATE DOMAIN status_channel AS text
    CHECK (VALUE IN ('callback', 'poll', 'exit_code', 'api', 'reconcile'));
CREATE DOMAIN image_digest AS text
    CHECK (VALUE ~ '^sha256:[0-9a-f]{64}$');

-- ---------------------------------------------------------------------------
-- Scheduler side: one row per job this node schedules.
CREATE TABLE t_schedule_job (
    job_id            bfia_id PRIMARY KEY,
    flow_id           text NOT NULL DEFAULT '' CHECK (length(flow_id) <= 128),
    old_job_id        text NOT NULL DEFAULT '' CHECK (length(old_job_id) <= 128),
    dag               jsonb NOT NULL CHECK (jsonb_typeof(dag) = 'object'),
    config            jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    initiator         bfia_id NOT NULL,
    scheduler         bfia_id NOT NULL,
    parties           jsonb NOT NULL CHECK (jsonb_typeof(parties) = 'array'
                                            AND jsonb_array_length(parties) >= 1),
    sync_type         text NOT NULL DEFAULT 'poll' CHECK (sync_type IN ('poll', 'callback')),
    requires_approval boolean NOT NULL DEFAULT false,
    status            job_status NOT NULL DEFAULT 'PENDING',
    outcome           text CHECK (outcome IN ('success', 'failed', 'stopped')),
    progress          integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    wait_reason       text NOT NULL DEFAULT '',
    error_text        text NOT NULL DEFAULT '',
    deadline          timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    start_time        timestamptz,
    end_time          timestamptz,
    -- an outcome exists exactly when the job is FINISHED
    CHECK ((status = 'FINISHED') = (outcome IS NOT NULL)),
    CHECK (status <> 'FINISHED' OR end_time IS NOT NULL),
    CHECK (end_time IS NULL OR start_time IS NULL OR end_time >= start_time)
);
CREATE INDEX t_schedule_job_live ON t_schedule_job (status, updated_at)
    WHERE status IN ('PENDING', 'READY', 'RUNNING');
CREATE INDEX t_schedule_job_flow ON t_schedule_job (flow_id) WHERE flow_id <> '';

-- Scheduler side: one row per (task, participating node).
CREATE TABLE t_schedule_task (
    job_id            bfia_id NOT NULL REFERENCES t_schedule_job (job_id) ON DELETE CASCADE,
    task_id           bfia_id NOT NULL,
    node_id           bfia_id NOT NULL,
    task_name         bfia_id NOT NULL,
    component         text NOT NULL CHECK (length(component) BETWEEN 1 AND 128),
    provider          text NOT NULL DEFAULT '' CHECK (length(provider) <= 128),
    version           text NOT NULL DEFAULT '' CHECK (length(version) <= 64),
    roles             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(roles) = 'array'),
    depends_on        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(depends_on) = 'array'),
    status            task_status NOT NULL DEFAULT 'PENDING',
    status_channel    status_channel,
    wait_reason       text NOT NULL DEFAULT '',
    error_text        text NOT NULL DEFAULT '',
    exit_code         integer,
    log_tail          text NOT NULL DEFAULT '',
    start_sent_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    start_time        timestamptz,
    end_time          timestamptz,
    PRIMARY KEY (job_id, task_id, node_id),
    UNIQUE (job_id, task_name, node_id),
    CHECK (exit_code IS NULL OR status IN ('SUCCESS', 'FAILED')),
    CHECK (end_time IS NULL OR start_time IS NULL OR end_time >= start_time)
);
CREATE INDEX t_schedule_task_live ON t_schedule_task (job_id, status)
    WHERE status IN ('PENDING', 'READY', 'RUNNING');

-- ---------------------------------------------------------------------------
-- Partner side: one row per (job, local role).
CREATE TABLE t_job (
    job_id            bfia_id NOT NULL,
    role              text NOT NULL CHECK (role ~ '^[a-z][a-z0-9_]{0,31}$'),
    flow_id           text NOT NULL DEFAULT '' CHECK (length(flow_id) <= 128),
    dag               jsonb NOT NULL CHECK (jsonb_typeof(dag) = 'object'),
    config            jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    initiator         bfia_id NOT NULL,
    scheduler         bfia_id NOT NULL,
    sync_type         text NOT NULL DEFAULT 'poll' CHECK (sync_type IN ('poll', 'callback')),
    status            job_status NOT NULL DEFAULT 'READY',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    start_time        timestamptz,
    end_time          timestamptz,
    PRIMARY KEY (job_id, role),
    CHECK (status <> 'FINISHED' OR end_time IS NOT NULL),
    CHECK (end_time IS NULL OR start_time IS NULL OR end_time >= start_time)
);
CREATE INDEX t_job_live ON t_job (status) WHERE status IN ('PENDING', 'READY', 'RUNNING');

-- Partner side: one row per (task, local role and index).  At most one live
-- container per row: attempt and container_name identify it.
CREATE TABLE t_task (
    job_id            bfia_id NOT NULL,
    task_id           bfia_id NOT NULL,
    role              text NOT NULL CHECK (role ~ '^[a-z][a-z0-9_]{0,31}$'),
    role_index        integer NOT NULL DEFAULT 0 CHECK (role_index BETWEEN 0 AND 9999),
    task_name         text NOT NULL DEFAULT '' CHECK (length(task_name) <= 128),
    component         text NOT NULL CHECK (length(component) BETWEEN 1 AND 128),
    provider          text NOT NULL DEFAULT '' CHECK (length(provider) <= 128),
    version           text NOT NULL DEFAULT '' CHECK (length(version) <= 64),
    spec              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(spec) = 'object'),
    status            task_status NOT NULL DEFAULT 'READY',
    status_channel    status_channel,
    wait_reason       text NOT NULL DEFAULT '',
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    container_name    text CHECK (container_name ~ '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$'),
    container_id      text CHECK (container_id ~ '^[0-9a-f]{64}$'),
    image_digest      image_digest,
    exit_code         integer,
    oom_killed        boolean NOT NULL DEFAULT false,
    error_text        text NOT NULL DEFAULT '',
    log_tail          text NOT NULL DEFAULT '',
    token_id          text,
    claimed_status    task_status,  -- an unauthenticated callback's claim, held for the exit code
    status_updated_at timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    start_time        timestamptz,
    end_time          timestamptz,
    PRIMARY KEY (job_id, task_id, role, role_index),
    FOREIGN KEY (job_id, role) REFERENCES t_job (job_id, role) ON DELETE CASCADE,
    UNIQUE (container_name),
    CHECK (exit_code IS NULL OR status IN ('SUCCESS', 'FAILED')),
    CHECK (status <> 'SUCCESS' OR (NOT oom_killed AND coalesce(exit_code, 0) = 0)),
    CHECK (end_time IS NULL OR start_time IS NULL OR end_time >= start_time)
);
CREATE INDEX t_task_live ON t_task (status) WHERE status IN ('PENDING', 'READY', 'RUNNING');
CREATE INDEX t_task_by_task ON t_task (task_id);

-- ---------------------------------------------------------------------------
-- Providers and their components.
CREATE TABLE t_provider (
    name              text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    version           text NOT NULL CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$'),
    device            text NOT NULL DEFAULT 'docker' CHECK (device IN ('docker')),
    protocol          text NOT NULL DEFAULT 'bfia' CHECK (protocol IN ('bfia')),
    image             text NOT NULL CHECK (length(image) BETWEEN 1 AND 512),
    image_digest      image_digest NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version, device)
);

CREATE TABLE t_component (
    provider          text NOT NULL,
    version           text NOT NULL,
    device            text NOT NULL DEFAULT 'docker',
    component_name    text NOT NULL CHECK (component_name ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'),
    description       jsonb NOT NULL CHECK (jsonb_typeof(description) = 'object'),
    role_list         jsonb NOT NULL CHECK (jsonb_typeof(role_list) = 'array'
                                            AND jsonb_array_length(role_list) >= 1),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, version, device, component_name),
    FOREIGN KEY (provider, version, device) REFERENCES t_provider (name, version, device)
        ON DELETE CASCADE
);
CREATE INDEX t_component_by_name ON t_component (component_name);

-- Uploaded datasets: referenced in jobs as dataset_id = namespace#name.
CREATE TABLE t_dataset (
    namespace         text NOT NULL CHECK (namespace ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'),
    name              text NOT NULL CHECK (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'),
    uri               text NOT NULL CHECK (uri ~ '^(file|s3|hdfs)://'),
    size_bytes        bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    sha256            text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    meta              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(meta) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);

-- Peer nodes.  The file format extends FATE-Flow's route_table.yaml.
CREATE TABLE t_route (
    node_id           bfia_id PRIMARY KEY,
    host              text NOT NULL CHECK (length(host) BETWEEN 1 AND 253 AND host !~ '[/\s]'),
    port              integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    scheme            text NOT NULL DEFAULT 'http' CHECK (scheme IN ('http', 'https')),
    profile           text NOT NULL DEFAULT 'standard'
                      CHECK (profile IN ('standard', 'fate-flow', 'kuscia')),
    auth              text NOT NULL DEFAULT 'required' CHECK (auth IN ('required', 'optional', 'off')),
    key_pin           text CHECK (length(key_pin) <= 4096),
    source            text NOT NULL DEFAULT 'api' CHECK (source IN ('file', 'api')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The audit trail: every state transition of every entity.
CREATE TABLE t_event (
    id                bigserial PRIMARY KEY,
    entity            text NOT NULL CHECK (entity IN ('job', 'task', 'schedule_job', 'schedule_task',
                                                     'provider', 'dataset', 'route', 'key',
                                                     'container')),
    entity_id         text NOT NULL CHECK (length(entity_id) BETWEEN 1 AND 512),
    from_status       text,
    to_status         text NOT NULL,
    channel           status_channel,
    reason            text NOT NULL DEFAULT '',
    ts                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX t_event_entity ON t_event (entity, entity_id, ts);

-- The node's signing keys (private key material stays in a 0600 file).
CREATE TABLE t_attest_key (
    kid               text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{16,128}$'),
    alg               text NOT NULL DEFAULT 'ES256' CHECK (alg IN ('ES256')),
    public_jwk        jsonb NOT NULL CHECK (jsonb_typeof(public_jwk) = 'object'),
    private_key_path  text NOT NULL CHECK (length(private_key_path) BETWEEN 1 AND 4096),
    created_at        timestamptz NOT NULL DEFAULT now(),
    not_after         timestamptz,
    retired_at        timestamptz,
    CHECK (retired_at IS NULL OR retired_at >= created_at)
);
-- at most one active (not retired) key
CREATE UNIQUE INDEX t_attest_key_one_active ON t_attest_key ((true)) WHERE retired_at IS NULL;

-- Airlock schema. Each table has one writing service, named in ARCHITECTURE.md.

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    team_id     uuid NOT NULL REFERENCES teams (id),
    role        text NOT NULL CHECK (role IN ('admin', 'researcher', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

CREATE TABLE evaluations (
    id                   uuid PRIMARY KEY,
    team_id              uuid NOT NULL REFERENCES teams (id),
    owner_id             uuid NOT NULL REFERENCES users (id),
    name                 text NOT NULL,
    spec                 jsonb NOT NULL,
    labels               jsonb NOT NULL DEFAULT '{}',
    priority             smallint NOT NULL,
    status               text NOT NULL DEFAULT 'queued',
    counts               jsonb NOT NULL,
    run_count            integer NOT NULL,
    cancel_requested_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evaluations_team_newest ON evaluations (team_id, created_at DESC, id DESC);
CREATE INDEX evaluations_labels ON evaluations USING gin (labels jsonb_path_ops);

CREATE TABLE runs (
    id             uuid PRIMARY KEY,
    evaluation_id  uuid NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    task_index     integer NOT NULL,
    task_id        text NOT NULL,
    epoch          integer NOT NULL,
    attempt        integer NOT NULL DEFAULT 1,
    state          text NOT NULL DEFAULT 'queued',
    reason         text,
    exit_code      integer,
    last_seq       bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (evaluation_id, task_index, epoch)
);

-- seq is assigned by the result-processor, gap-free per run; source_seq is the worker's
-- own numbering within an attempt and makes redelivered events idempotent.
CREATE TABLE run_events (
    run_id      uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    attempt     integer NOT NULL,
    source_seq  bigint,
    kind        text NOT NULL,
    ts          timestamptz NOT NULL,
    body        jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE UNIQUE INDEX run_events_source ON run_events (run_id, attempt, source_seq)
    WHERE source_seq IS NOT NULL;

CREATE TABLE score_aggregates (
    evaluation_id  uuid NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    name           text NOT NULL,
    count          bigint NOT NULL,
    mean           double precision NOT NULL,
    m2             double precision NOT NULL,
    min            double precision NOT NULL,
    max            double precision NOT NULL,
    PRIMARY KEY (evaluation_id, name)
);

-- Messages accepted in the same transaction as the rows they describe; the relay
-- publishes them with confirms and deletes them afterwards.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    exchange     text NOT NULL,
    routing_key  text NOT NULL,
    priority     smallint NOT NULL DEFAULT 0,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('airlock_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

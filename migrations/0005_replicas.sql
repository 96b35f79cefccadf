-- Several replicas of every service: who is alive (a lease per replica), which replica
-- started each run attempt (a claim, also what global quotas count), and which replica
-- holds each singleton role (a leader lease).

-- One row per orchestrator or result-processor process, written only by that process
-- (its heartbeat renews the lease) until it stops or is found lost; then any replica may
-- mark it lost once, and housekeeping removes it after a day.
CREATE TABLE replicas (
    id                        text PRIMARY KEY,
    service                   text NOT NULL CHECK (service IN ('orchestrator', 'result-processor')),
    host                      text NOT NULL,
    runtime                   text,
    capacity                  integer,
    partitions                integer[] NOT NULL DEFAULT '{}',
    started_at                timestamptz NOT NULL DEFAULT now(),
    heartbeat_at              timestamptz NOT NULL DEFAULT now(),
    lease_expires_at          timestamptz NOT NULL,
    ended_at                  timestamptz,
    end_state                 text CHECK (end_state IN ('lost', 'stopped'))
);
CREATE INDEX replicas_live ON replicas (service, lease_expires_at) WHERE ended_at IS NULL;

-- A run attempt started by exactly one orchestrator: the claim is inserted, under the
-- team's (and the platform's) advisory lock, only while the team has fewer unreleased
-- claims than its quota. Released when the attempt ends; a dead replica's claims are
-- released (local runtime) or moved to the replica that adopts the sandbox (Kubernetes).
CREATE TABLE run_claims (
    run_id        uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    team_id       uuid NOT NULL,
    replica_id    text NOT NULL,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    released_at   timestamptz,
    PRIMARY KEY (run_id, attempt)
);
CREATE INDEX run_claims_active_team ON run_claims (team_id) WHERE released_at IS NULL;
CREATE INDEX run_claims_active_replica ON run_claims (replica_id) WHERE released_at IS NULL;

-- Wake replicas waiting for quota when a claim is released.
CREATE FUNCTION run_claims_released() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('airlock_claim_released', NEW.team_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER run_claims_released AFTER UPDATE OF released_at ON run_claims
    FOR EACH ROW WHEN (OLD.released_at IS NULL AND NEW.released_at IS NOT NULL)
    EXECUTE FUNCTION run_claims_released();

-- The limits every orchestrator enforces together: one row, written by each orchestrator
-- as it starts with its configuration (the newest replica's settings win, so a rolling
-- update changes them without replicas of two settings refusing each other), read in
-- every claim's transaction.
CREATE TABLE global_limits (
    singleton                    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    team_max_concurrent_runs     integer,
    platform_max_concurrent_runs integer,
    set_by                       text NOT NULL,
    set_at                       timestamptz NOT NULL DEFAULT now()
);

-- Singleton roles (the Kubernetes reaper, housekeeping): held by one replica until its
-- lease expires; renewed by the holder, taken over by another replica after expiry.
CREATE TABLE leader_leases (
    role          text PRIMARY KEY,
    holder        text NOT NULL,
    acquired_at   timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- Superseded by `replicas`.
DROP TABLE orchestrators;

-- What the web UI reads besides the backbone: each run's latest score per name, the
-- orchestrators' capacity, and fast counts of the runs that have not finished.

-- Latest value per score name; written by the result-processor with the run's row.
ALTER TABLE runs ADD COLUMN scores jsonb NOT NULL DEFAULT '{}';

-- Runs that have not finished, for the system view's queued / running counts.
CREATE INDEX runs_unfinished ON runs (state)
    WHERE state IN ('queued', 'scheduling', 'starting', 'running');

-- Name filters within a team.
CREATE INDEX evaluations_team_name ON evaluations (team_id, lower(name));

-- Each orchestrator reports what it can run; written only by the orchestrators.
CREATE TABLE orchestrators (
    instance                  text PRIMARY KEY,
    runtime                   text NOT NULL,
    max_concurrent_runs       integer NOT NULL,
    team_max_concurrent_runs  integer,
    started_at                timestamptz NOT NULL,
    seen_at                   timestamptz NOT NULL
);

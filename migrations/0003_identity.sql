-- Identity and access: users from an OpenID Connect provider, service accounts, named and
-- scoped API tokens, browser sessions, pending logins and the audit log. All written by
-- the gateway.

-- A user is a person (`user`, created at first login or by the admin command) or a
-- service account (`service`, created by a team admin for CI). People from the identity
-- provider are found by (issuer, subject), never by name.
ALTER TABLE users
    ADD COLUMN kind text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'service')),
    ADD COLUMN email text,
    ADD COLUMN oidc_issuer text,
    ADD COLUMN oidc_subject text,
    ADD COLUMN last_login_at timestamptz,
    ADD CONSTRAINT users_oidc_identity UNIQUE (oidc_issuer, oidc_subject);

CREATE INDEX users_team ON users (team_id);

-- Tokens created before scopes existed keep what they could do: everything their role allows.
ALTER TABLE api_tokens
    ADD COLUMN name text NOT NULL DEFAULT '',
    ADD COLUMN prefix text NOT NULL DEFAULT '',
    ADD COLUMN scopes text[] NOT NULL
        DEFAULT ARRAY['evaluations:read', 'evaluations:write', 'evaluations:cancel', 'admin'],
    ADD COLUMN created_by uuid REFERENCES users (id) ON DELETE SET NULL;

CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at DESC);

-- A browser session: the cookie holds a random id; only its SHA-256 is stored.
CREATE TABLE sessions (
    id_hash         bytea PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    source_address  text
);

CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- An authorization request sent to the identity provider and not yet answered. Keyed by
-- the SHA-256 of `state`; used once.
CREATE TABLE login_requests (
    state_hash     bytea PRIMARY KEY,
    nonce          text NOT NULL,
    pkce_verifier  text NOT NULL,
    return_to      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Who did what to which object, when and from where. Append-only.
CREATE TABLE audit_log (
    id              uuid PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    team_id         uuid REFERENCES teams (id) ON DELETE SET NULL,
    actor_id        uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_name      text,
    action          text NOT NULL,
    object_type     text NOT NULL,
    object_id       text,
    source_address  text,
    outcome         text NOT NULL CHECK (outcome IN ('success', 'failure')),
    detail          jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_team ON audit_log (team_id, id DESC);

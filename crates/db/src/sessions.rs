//! Browser sessions and pending logins (written by the gateway). Both are keyed by the
//! SHA-256 of a random secret the browser holds; the secret itself is never stored.

use airlock_core::UserId;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::FromRow;

use crate::rows::{PRINCIPAL_COLUMNS, Principal, PrincipalRow};
use crate::{GatewayDb, Result};

/// A session found for a cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf_token: String,
}

/// What [`Db::purge`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub login_requests: u64,
    pub audit_entries: u64,
}

impl Purged {
    pub fn any(&self) -> bool {
        self.sessions + self.login_requests + self.audit_entries > 0
    }
}

/// An authorization request awaiting the identity provider's answer.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LoginRequest {
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
}

impl GatewayDb {
    /// Starts a session. Ended ones are removed by [`Db::purge`], not here.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn create_session(
        &self,
        id_hash: &[u8],
        user_id: UserId,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
        source_address: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, expires_at, source_address)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id.as_uuid())
        .bind(csrf_token)
        .bind(expires_at)
        .bind(source_address)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The live session for a cookie: not past its lifetime, used within `idle_secs`.
    /// Records the use at most once a minute.
    #[tracing::instrument(skip_all)]
    pub async fn session(&self, id_hash: &[u8], idle_secs: i64) -> Result<Option<Session>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            principal: PrincipalRow,
            csrf_token: String,
            last_seen_at: DateTime<Utc>,
        }
        let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLUMNS}, s.csrf_token, s.last_seen_at
             FROM sessions s JOIN users u ON u.id = s.user_id JOIN teams t ON t.id = u.team_id
             WHERE s.id_hash = $1 AND s.expires_at > now()
               AND s.last_seen_at > now() - make_interval(secs => $2)"
        )))
        .bind(id_hash)
        .bind(idle_secs as f64)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if Utc::now() - row.last_seen_at > chrono::Duration::minutes(1) {
            sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1")
                .bind(id_hash)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(Session {
            principal: row.principal.try_into()?,
            csrf_token: row.csrf_token,
        }))
    }

    /// Ends a session; true if there was one.
    pub async fn delete_session(&self, id_hash: &[u8]) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?
            .rows_affected()
            == 1)
    }

    /// Remembers an authorization request. Unanswered ones are removed by [`Db::purge`].
    pub async fn insert_login_request(
        &self,
        state_hash: &[u8],
        request: &LoginRequest,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO login_requests (state_hash, nonce, pkce_verifier, return_to)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(state_hash)
        .bind(&request.nonce)
        .bind(&request.pkce_verifier)
        .bind(&request.return_to)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes (uses up) an authorization request younger than `max_age_secs`.
    pub async fn take_login_request(
        &self,
        state_hash: &[u8],
        max_age_secs: i64,
    ) -> Result<Option<LoginRequest>> {
        Ok(sqlx::query_as(
            "DELETE FROM login_requests WHERE state_hash = $1
             RETURNING nonce, pkce_verifier, return_to,
                       created_at > now() - make_interval(secs => $2) AS fresh",
        )
        .bind(state_hash)
        .bind(max_age_secs as f64)
        .fetch_optional(self.pool())
        .await?
        .and_then(
            |(nonce, pkce_verifier, return_to, fresh): (String, String, String, bool)| {
                fresh.then_some(LoginRequest {
                    nonce,
                    pkce_verifier,
                    return_to,
                })
            },
        ))
    }

    /// Removes sessions past their lifetime or idle limit, login requests older than an
    /// hour, and audit entries older than `audit_retention_days` (0 keeps them forever).
    #[tracing::instrument(skip(self))]
    pub async fn purge(&self, idle_secs: i64, audit_retention_days: u32) -> Result<Purged> {
        let sessions = sqlx::query(
            "DELETE FROM sessions
             WHERE expires_at < now() OR last_seen_at < now() - make_interval(secs => $1)",
        )
        .bind(idle_secs as f64)
        .execute(self.pool())
        .await?
        .rows_affected();
        let login_requests =
            sqlx::query("DELETE FROM login_requests WHERE created_at < now() - interval '1 hour'")
                .execute(self.pool())
                .await?
                .rows_affected();
        let audit_entries = if audit_retention_days == 0 {
            0
        } else {
            sqlx::query("DELETE FROM audit_log WHERE at < now() - make_interval(days => $1)")
                .bind(i32::try_from(audit_retention_days).unwrap_or(i32::MAX))
                .execute(self.pool())
                .await?
                .rows_affected()
        };
        Ok(Purged {
            sessions,
            login_requests,
            audit_entries,
        })
    }
}

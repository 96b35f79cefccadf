//! Teams, users and API tokens (written by the gateway).

use airlock_core::{Role, TeamId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::rows::{Principal, PrincipalRow};
use crate::{Db, Result};

impl Db {
    /// Finds or creates the team and the user, (re)setting the user's team and role.
    #[tracing::instrument(skip(self))]
    pub async fn upsert_user(&self, user: &str, team: &str, role: Role) -> Result<Principal> {
        let mut tx = self.pool().begin().await?;
        let team_id: Uuid = sqlx::query_scalar(
            "INSERT INTO teams (id, name) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
             RETURNING id",
        )
        .bind(TeamId::new().as_uuid())
        .bind(team)
        .fetch_one(&mut *tx)
        .await?;
        let user_id: Uuid = sqlx::query_scalar(
            "INSERT INTO users (id, name, team_id, role) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET team_id = EXCLUDED.team_id, role = EXCLUDED.role
             RETURNING id",
        )
        .bind(UserId::new().as_uuid())
        .bind(user)
        .bind(team_id)
        .bind(role.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Principal {
            user_id: user_id.into(),
            user_name: user.to_owned(),
            team_id: team_id.into(),
            team_name: team.to_owned(),
            role,
        })
    }

    /// Stores a token by its hash only.
    #[tracing::instrument(skip(self, token_hash))]
    pub async fn insert_api_token(
        &self,
        user_id: UserId,
        token_hash: &[u8],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Uuid> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(user_id.as_uuid())
        .bind(token_hash)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// The principal a live (not revoked, not expired) token belongs to. Records the
    /// last use at most once a minute, so authentication stays a read on the hot path.
    #[tracing::instrument(skip_all)]
    pub async fn principal_for_token(&self, token_hash: &[u8]) -> Result<Option<Principal>> {
        let row: Option<(Uuid, PrincipalRow)> =
            sqlx::query_as::<_, (Uuid, String, Uuid, String, String, Uuid)>(
                "SELECT u.id, u.name, t.id, t.name, u.role, k.id
             FROM api_tokens k JOIN users u ON u.id = k.user_id JOIN teams t ON t.id = u.team_id
             WHERE k.token_hash = $1 AND k.revoked_at IS NULL
               AND (k.expires_at IS NULL OR k.expires_at > now())",
            )
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?
            .map(|(user_id, user_name, team_id, team_name, role, token_id)| {
                (
                    token_id,
                    PrincipalRow {
                        user_id,
                        user_name,
                        team_id,
                        team_name,
                        role,
                    },
                )
            });
        let Some((token_id, row)) = row else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = now()
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(token_id)
        .execute(self.pool())
        .await?;
        Ok(Some(row.try_into()?))
    }
}

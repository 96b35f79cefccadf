//! API tokens (written by the gateway): stored by hash only, with a name, the first
//! characters of the secret (to recognise it in a list), scopes, optional expiry and the
//! time of last use.

use airlock_core::{Scope, Scopes, TeamId, UserId};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::FromRow;
use uuid::Uuid;

use crate::rows::{PRINCIPAL_COLUMNS, Principal, PrincipalRow, UserKind};
use crate::{DbError, GatewayDb, Result};

/// A token as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub owner_id: UserId,
    pub owner_name: String,
    pub owner_team: TeamId,
    pub owner_kind: UserKind,
}

/// What a new token is.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub owner: UserId,
    pub hash: &'a [u8],
    pub name: &'a str,
    pub prefix: &'a str,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
}

/// The principal a presented token stands for, and what the token itself allows.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub principal: Principal,
    pub token_id: Uuid,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct TokenRow {
    id: Uuid,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    owner_id: Uuid,
    owner_name: String,
    owner_team: Uuid,
    owner_kind: String,
}

/// Unknown names (from a newer version) grant nothing rather than failing the read.
fn scopes_of(names: &[String]) -> Scopes {
    names
        .iter()
        .filter_map(|n| n.parse::<Scope>().ok())
        .collect()
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = DbError;

    fn try_from(row: TokenRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            scopes: scopes_of(&row.scopes),
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            owner_id: row.owner_id.into(),
            owner_name: row.owner_name,
            owner_team: row.owner_team.into(),
            owner_kind: UserKind::parse(&row.owner_kind)?,
        })
    }
}

const TOKEN_COLUMNS: &str = "k.id, k.name, k.prefix, k.scopes, k.created_at, k.expires_at, k.last_used_at, \
     k.revoked_at, u.id AS owner_id, u.name AS owner_name, u.team_id AS owner_team, u.kind AS owner_kind";

impl GatewayDb {
    /// Stores a token by its hash only.
    #[tracing::instrument(skip_all, fields(owner = %new.owner))]
    pub async fn insert_api_token(&self, new: &NewToken<'_>) -> Result<ApiToken> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, name, prefix, scopes, expires_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(new.owner.as_uuid())
        .bind(new.hash)
        .bind(new.name)
        .bind(new.prefix)
        .bind(new.scopes.names())
        .bind(new.expires_at)
        .bind(new.created_by.map(|u| u.as_uuid()))
        .execute(self.pool())
        .await?;
        self.api_token(id)
            .await?
            .ok_or_else(|| DbError::Corrupt("token vanished after insert".into()))
    }

    /// One token, whoever owns it (callers check visibility).
    pub async fn api_token(&self, id: Uuid) -> Result<Option<ApiToken>> {
        let row: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens k JOIN users u ON u.id = k.user_id WHERE k.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// A user's tokens, newest first, revoked ones included.
    pub async fn api_tokens_of(&self, owner: UserId) -> Result<Vec<ApiToken>> {
        let rows: Vec<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens k JOIN users u ON u.id = k.user_id
             WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.id DESC"
        )))
        .bind(owner.as_uuid())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Revokes a token; true if this call revoked it (false if it already was).
    #[tracing::instrument(skip(self))]
    pub async fn revoke_api_token(&self, id: Uuid) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// The principal a live (not revoked, not expired) token belongs to. Records the
    /// last use at most once a minute, so authentication stays a read on the hot path.
    #[tracing::instrument(skip_all)]
    pub async fn principal_for_token(&self, token_hash: &[u8]) -> Result<Option<TokenGrant>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            principal: PrincipalRow,
            token_id: Uuid,
            scopes: Vec<String>,
            expires_at: Option<DateTime<Utc>>,
            last_used_at: Option<DateTime<Utc>>,
        }
        let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLUMNS}, k.id AS token_id, k.scopes, k.expires_at, k.last_used_at
             FROM api_tokens k JOIN users u ON u.id = k.user_id JOIN teams t ON t.id = u.team_id
             WHERE k.token_hash = $1 AND k.revoked_at IS NULL
               AND (k.expires_at IS NULL OR k.expires_at > now())"
        )))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stale = row
            .last_used_at
            .is_none_or(|at| Utc::now() - at > chrono::Duration::minutes(1));
        if stale {
            sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
                .bind(row.token_id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(TokenGrant {
            principal: row.principal.try_into()?,
            token_id: row.token_id,
            scopes: scopes_of(&row.scopes),
            expires_at: row.expires_at,
        }))
    }
}

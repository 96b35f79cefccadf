//! Teams, users and service accounts (written by the gateway). People signing in through
//! the identity provider are found by (issuer, subject); their team and role follow the
//! provider's claims when it sends them, and otherwise stay what an admin set.

use airlock_core::{Role, TeamId, UserId};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

use crate::rows::{PRINCIPAL_COLUMNS, Principal, PrincipalRow, UserKind, parse_role};
use crate::{DbError, GatewayDb, Result};

/// Who the identity provider says signed in.
#[derive(Debug, Clone)]
pub struct ProviderIdentity<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    /// Preferred display name (e.g. `preferred_username`, else the email, else the subject).
    pub name: &'a str,
    pub email: Option<&'a str>,
    /// The team and role the claims name, if they name any.
    pub team: Option<&'a str>,
    pub role: Option<Role>,
    /// For a user seen for the first time without team or role claims.
    pub default_team: &'a str,
    pub default_role: Role,
    /// Records the time as the user's last login.
    pub is_login: bool,
}

/// A member of a team, as team administration shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub kind: UserKind,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct MemberRow {
    id: Uuid,
    name: String,
    email: Option<String>,
    kind: String,
    role: String,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

impl TryFrom<MemberRow> for Member {
    type Error = DbError;

    fn try_from(row: MemberRow) -> Result<Self> {
        Ok(Self {
            id: row.id.into(),
            name: row.name,
            email: row.email,
            kind: UserKind::parse(&row.kind)?,
            role: parse_role(&row.role)?,
            created_at: row.created_at,
            last_login_at: row.last_login_at,
        })
    }
}

const MEMBER_COLUMNS: &str = "id, name, email, kind, role, created_at, last_login_at";

/// Why a role change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Changed,
    NotFound,
    /// It would leave the team without an admin.
    LastAdmin,
}

async fn team_id(tx: &mut Transaction<'_, Postgres>, name: &str) -> Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO teams (id, name) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id",
    )
    .bind(TeamId::new().as_uuid())
    .bind(name)
    .fetch_one(&mut **tx)
    .await?)
}

async fn principal_of(tx: &mut Transaction<'_, Postgres>, user_id: Uuid) -> Result<Principal> {
    let row: PrincipalRow = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {PRINCIPAL_COLUMNS} FROM users u JOIN teams t ON t.id = u.team_id WHERE u.id = $1"
    )))
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

impl GatewayDb {
    /// Finds or creates the team and the user, (re)setting the user's team and role.
    #[tracing::instrument(skip(self))]
    pub async fn upsert_user(&self, user: &str, team: &str, role: Role) -> Result<Principal> {
        let mut tx = self.pool().begin().await?;
        let team_id = team_id(&mut tx, team).await?;
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
        let principal = principal_of(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(principal)
    }

    /// The user the identity provider vouches for, created at first sight. Team and role
    /// follow the claims when present; otherwise a known user keeps what it has and a new
    /// one gets the defaults. A display name taken by someone else gets a suffix.
    #[tracing::instrument(skip(self), fields(subject = identity.subject))]
    pub async fn provider_user(&self, identity: &ProviderIdentity<'_>) -> Result<Principal> {
        let mut tx = self.pool().begin().await?;
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2 FOR UPDATE",
        )
        .bind(identity.issuer)
        .bind(identity.subject)
        .fetch_optional(&mut *tx)
        .await?;
        let team = match identity.team {
            Some(team) => Some(team_id(&mut tx, team).await?),
            None => None,
        };
        let user_id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE users SET email = COALESCE($2, email),
                            team_id = COALESCE($3, team_id), role = COALESCE($4, role),
                            last_login_at = CASE WHEN $5 THEN now() ELSE last_login_at END
                     WHERE id = $1",
                )
                .bind(id)
                .bind(identity.email)
                .bind(team)
                .bind(identity.role.map(Role::as_str))
                .bind(identity.is_login)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let team = match team {
                    Some(team) => team,
                    None => team_id(&mut tx, identity.default_team).await?,
                };
                let name_taken: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)")
                        .bind(identity.name)
                        .fetch_one(&mut *tx)
                        .await?;
                let id = UserId::new().as_uuid();
                let name = if name_taken {
                    format!("{}#{}", identity.name, &id.simple().to_string()[24..])
                } else {
                    identity.name.to_owned()
                };
                sqlx::query(
                    "INSERT INTO users (id, name, team_id, role, kind, email, oidc_issuer, oidc_subject,
                                        last_login_at)
                     VALUES ($1, $2, $3, $4, 'user', $5, $6, $7, CASE WHEN $8 THEN now() END)",
                )
                .bind(id)
                .bind(name)
                .bind(team)
                .bind(identity.role.unwrap_or(identity.default_role).as_str())
                .bind(identity.email)
                .bind(identity.issuer)
                .bind(identity.subject)
                .bind(identity.is_login)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let principal = principal_of(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(principal)
    }

    /// A user of any team, by id.
    pub async fn principal(&self, user_id: UserId) -> Result<Option<Principal>> {
        let row: Option<PrincipalRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM users u JOIN teams t ON t.id = u.team_id WHERE u.id = $1"
        )))
        .bind(user_id.as_uuid())
        .fetch_optional(self.pool())
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// The team's people and service accounts, by name.
    pub async fn members(&self, team_id: TeamId, kind: Option<UserKind>) -> Result<Vec<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM users WHERE team_id = $1 AND ($2::text IS NULL OR kind = $2)
             ORDER BY name"
        )))
        .bind(team_id.as_uuid())
        .bind(kind.map(UserKind::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// One member of the team.
    pub async fn member(&self, team_id: TeamId, id: UserId) -> Result<Option<Member>> {
        let row: Option<MemberRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM users WHERE team_id = $1 AND id = $2"
        )))
        .bind(team_id.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(self.pool())
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Changes a member's role, refusing to leave the team without an admin. The team's
    /// admins are locked first, so two demotions cannot both pass the check.
    #[tracing::instrument(skip(self))]
    pub async fn set_role(&self, team_id: TeamId, id: UserId, role: Role) -> Result<RoleChange> {
        let mut tx = self.pool().begin().await?;
        let admins: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM users WHERE team_id = $1 AND role = 'admin' AND kind = 'user' FOR UPDATE",
        )
        .bind(team_id.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        let current: Option<(String, String)> = sqlx::query_as(
            "SELECT role, kind FROM users WHERE team_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(team_id.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((current, _)) = current else {
            return Ok(RoleChange::NotFound);
        };
        if current == "admin"
            && role != Role::Admin
            && admins.len() == 1
            && admins[0] == id.as_uuid()
        {
            return Ok(RoleChange::LastAdmin);
        }
        sqlx::query("UPDATE users SET role = $3 WHERE team_id = $1 AND id = $2")
            .bind(team_id.as_uuid())
            .bind(id.as_uuid())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RoleChange::Changed)
    }

    /// Creates a service account in the team. `None` when the name is taken.
    #[tracing::instrument(skip(self))]
    pub async fn create_service_account(
        &self,
        team_id: TeamId,
        name: &str,
        role: Role,
    ) -> Result<Option<Member>> {
        let row: Option<MemberRow> = sqlx::query_as(AssertSqlSafe(format!(
            "INSERT INTO users (id, name, team_id, role, kind) VALUES ($1, $2, $3, $4, 'service')
             ON CONFLICT (name) DO NOTHING
             RETURNING {MEMBER_COLUMNS}"
        )))
        .bind(UserId::new().as_uuid())
        .bind(name)
        .bind(team_id.as_uuid())
        .bind(role.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(TryInto::try_into).transpose()
    }
}

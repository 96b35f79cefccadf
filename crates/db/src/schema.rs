//! Whether the database's schema is the one this build was made for. Services refuse to
//! start on any other: an older schema lacks what they write, a newer one may have moved
//! what they read. Only the `migrate` command changes the schema.

use std::collections::BTreeSet;

use crate::{Db, DbError, MIGRATOR, Result};

/// How the database's applied migrations compare with this build's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaCheck {
    /// Exactly this build's migrations are applied.
    Current,
    /// Migrations of this build are not applied yet (or none at all).
    Older { missing: Vec<i64> },
    /// The database has migrations this build does not know (a newer build applied them).
    Newer { unknown: Vec<i64> },
}

impl SchemaCheck {
    /// Compares the applied versions with the known ones.
    pub fn compare(applied: &BTreeSet<i64>, known: &BTreeSet<i64>) -> Self {
        let unknown: Vec<i64> = applied.difference(known).copied().collect();
        if !unknown.is_empty() {
            return Self::Newer { unknown };
        }
        let missing: Vec<i64> = known.difference(applied).copied().collect();
        if missing.is_empty() {
            Self::Current
        } else {
            Self::Older { missing }
        }
    }

    /// The message a service prints before it refuses to start; `None` when current.
    pub fn problem(&self, service: &str) -> Option<String> {
        match self {
            Self::Current => None,
            Self::Older { missing } => Some(format!(
                "the database schema is older than this {service} (migrations {missing:?} are not applied): \
                 run `airlock-gateway migrate` of this version first"
            )),
            Self::Newer { unknown } => Some(format!(
                "the database schema is newer than this {service} (it has migrations {unknown:?} this build does not know): \
                 run the version that migrated it, or restore the database from before that upgrade"
            )),
        }
    }
}

impl Db {
    /// Compares the database's applied migrations with this build's.
    #[tracing::instrument(skip_all)]
    pub async fn check_schema(&self) -> Result<SchemaCheck> {
        let known: BTreeSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(self.pool())
            .await?;
        let applied: BTreeSet<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .collect()
        } else {
            BTreeSet::new()
        };
        Ok(SchemaCheck::compare(&applied, &known))
    }

    /// Fails with a clear message unless the schema is exactly this build's.
    pub async fn require_current_schema(&self, service: &str) -> Result<()> {
        match self.check_schema().await?.problem(service) {
            None => Ok(()),
            Some(problem) => Err(DbError::Config(problem)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_applied_with_known_migrations() {
        let known = BTreeSet::from([1, 2, 3]);
        assert_eq!(SchemaCheck::compare(&known, &known), SchemaCheck::Current);
        assert_eq!(
            SchemaCheck::compare(&BTreeSet::from([1, 2]), &known),
            SchemaCheck::Older { missing: vec![3] }
        );
        assert_eq!(
            SchemaCheck::compare(&BTreeSet::new(), &known),
            SchemaCheck::Older {
                missing: vec![1, 2, 3]
            }
        );
        assert_eq!(
            SchemaCheck::compare(&BTreeSet::from([1, 2, 3, 4]), &known),
            SchemaCheck::Newer { unknown: vec![4] }
        );
        assert!(SchemaCheck::Current.problem("orchestrator").is_none());
        let newer = SchemaCheck::Newer { unknown: vec![4] }.problem("orchestrator");
        assert!(newer.is_some_and(|m| m.contains("newer") && m.contains("[4]")));
    }
}

//! Who may do what: roles within a team, and the scopes a credential carries. What a
//! request may do is its role's scopes intersected with its credential's scopes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything a researcher may, plus team administration.
    Admin,
    /// Submits, cancels and reads the team's evaluations.
    Researcher,
    /// Reads the team's evaluations.
    Viewer,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Researcher => "researcher",
            Self::Viewer => "viewer",
        }
    }

    /// May submit and cancel evaluations.
    pub const fn can_write(self) -> bool {
        matches!(self, Self::Admin | Self::Researcher)
    }

    /// Everything this role may do.
    pub const fn scopes(self) -> Scopes {
        match self {
            Self::Admin => Scopes::ALL,
            Self::Researcher => Scopes(
                Scope::EvaluationsRead.bit()
                    | Scope::EvaluationsWrite.bit()
                    | Scope::EvaluationsCancel.bit(),
            ),
            Self::Viewer => Scopes(Scope::EvaluationsRead.bit()),
        }
    }

    /// Ordered by power, so the highest of several claimed roles can be chosen.
    pub const fn rank(self) -> u8 {
        match self {
            Self::Viewer => 0,
            Self::Researcher => 1,
            Self::Admin => 2,
        }
    }
}

/// One permission a credential may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// Read the team's evaluations, runs, events and system view.
    #[serde(rename = "evaluations:read")]
    EvaluationsRead,
    /// Submit evaluations.
    #[serde(rename = "evaluations:write")]
    EvaluationsWrite,
    /// Cancel evaluations.
    #[serde(rename = "evaluations:cancel")]
    EvaluationsCancel,
    /// Administer the team: members, service accounts, every token, the audit log.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Self::EvaluationsRead,
        Self::EvaluationsWrite,
        Self::EvaluationsCancel,
        Self::Admin,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EvaluationsRead => "evaluations:read",
            Self::EvaluationsWrite => "evaluations:write",
            Self::EvaluationsCancel => "evaluations:cancel",
            Self::Admin => "admin",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Self::EvaluationsRead => 1,
            Self::EvaluationsWrite => 2,
            Self::EvaluationsCancel => 4,
            Self::Admin => 8,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope `{0}`; expected evaluations:read, evaluations:write, evaluations:cancel or admin"
)]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    pub const ALL: Scopes = Scopes(15);

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn intersect(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The names, in a fixed order.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`; expected admin, researcher or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "researcher" => Ok(Self::Researcher),
            "viewer" => Ok(Self::Viewer),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_nested_scopes() {
        assert!(
            Role::Viewer
                .scopes()
                .is_subset_of(Role::Researcher.scopes())
        );
        assert!(Role::Researcher.scopes().is_subset_of(Role::Admin.scopes()));
        assert!(!Role::Viewer.scopes().contains(Scope::EvaluationsWrite));
        assert!(!Role::Researcher.scopes().contains(Scope::Admin));
        assert_eq!(Role::Admin.scopes(), Scopes::ALL);
    }

    #[test]
    fn scopes_parse_print_and_intersect() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            let json = serde_json::to_value(scope).expect("serializes");
            assert_eq!(json, serde_json::Value::String(scope.as_str().into()));
        }
        assert!("evaluations:delete".parse::<Scope>().is_err());
        let read: Scopes = [Scope::EvaluationsRead].into_iter().collect();
        let both = read.intersect(Role::Researcher.scopes());
        assert_eq!(both.names(), vec!["evaluations:read".to_owned()]);
        assert!(read.intersect(Scopes::NONE).iter().next().is_none());
    }
}

//! Reading who someone is from a token's claims: a stable subject, a display name, an
//! email, and (when the provider sends them) the team and role.

use airlock_core::{Role, Scope, Scopes};
use serde_json::Value;

use crate::config::IdentityConfig;

/// What the claims say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub subject: String,
    pub name: String,
    pub email: Option<String>,
    pub team: Option<String>,
    pub role: Option<Role>,
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Claimed {
    /// The user these claims describe, as the database finds or creates it.
    pub fn identity<'a>(
        &'a self,
        issuer: &'a str,
        config: &'a IdentityConfig,
        is_login: bool,
    ) -> airlock_db::identity::ProviderIdentity<'a> {
        airlock_db::identity::ProviderIdentity {
            issuer,
            subject: &self.subject,
            name: &self.name,
            email: self.email.as_deref(),
            team: self.team.as_deref(),
            role: self.role,
            default_team: &config.oidc_default_team,
            default_role: config.oidc_default_role,
            is_login,
        }
    }
}

/// `None` when there is no subject.
pub fn read(claims: &Value, config: &IdentityConfig) -> Option<Claimed> {
    let text = |key: &str| {
        claims
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let subject = text("sub")?;
    let email = text("email");
    let name = text("preferred_username")
        .or_else(|| email.clone())
        .or_else(|| text("name"))
        .unwrap_or_else(|| subject.clone());
    let team = strings(claims.get(&config.oidc_team_claim))
        .into_iter()
        .filter_map(|value| value.strip_prefix(config.oidc_team_prefix.as_str()))
        .map(str::trim)
        .find(|team| !team.is_empty())
        .map(str::to_owned);
    let role = strings(claims.get(&config.oidc_role_claim))
        .into_iter()
        .filter_map(|value| value.parse::<Role>().ok())
        .max_by_key(|role| role.rank());
    Some(Claimed {
        subject,
        name: name.chars().take(200).collect(),
        email,
        team,
        role,
    })
}

/// The scopes an access token restricts itself to: the Airlock scopes in its `scope` (or
/// `scp`) claim; a token naming none of them is not restricted beyond the role.
pub fn access_token_scopes(claims: &Value) -> Scopes {
    let mut names: Vec<&str> = Vec::new();
    for key in ["scope", "scp"] {
        match claims.get(key) {
            Some(Value::String(s)) => names.extend(s.split_whitespace()),
            Some(Value::Array(items)) => names.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    let ours: Scopes = names
        .iter()
        .filter_map(|n| n.parse::<Scope>().ok())
        .collect();
    if ours == Scopes::NONE {
        Scopes::ALL
    } else {
        ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn team_and_role_come_from_configured_claims() {
        let mut config = IdentityConfig::defaults();
        config.oidc_team_prefix = "airlock-".into();
        let claims = json!({
            "sub": "s1", "email": "a@example.com",
            "groups": ["staff", "airlock-alpha", "airlock-beta"],
            "airlock_role": ["viewer", "admin"]
        });
        let claimed = read(&claims, &config).expect("has a subject");
        assert_eq!(claimed.team.as_deref(), Some("alpha"));
        assert_eq!(claimed.role, Some(Role::Admin));
        assert_eq!(claimed.name, "a@example.com");
        assert!(read(&json!({"email": "x"}), &config).is_none());
        let bare = read(&json!({"sub": "s2", "airlock_role": "boss"}), &config).expect("sub");
        assert_eq!(
            (bare.team, bare.role, bare.name.as_str()),
            (None, None, "s2")
        );
    }

    #[test]
    fn access_tokens_restrict_to_the_airlock_scopes_they_name() {
        assert_eq!(
            access_token_scopes(&json!({"scope": "openid profile"})),
            Scopes::ALL
        );
        let read_only = access_token_scopes(&json!({"scope": "openid evaluations:read"}));
        assert_eq!(read_only.names(), vec!["evaluations:read".to_owned()]);
        let scp = access_token_scopes(&json!({"scp": ["admin"]}));
        assert_eq!(scp.names(), vec!["admin".to_owned()]);
    }
}

//! The gateway's configuration and command line. Every setting can come from a flag or
//! an `AIRLOCK_*` environment variable; README.md lists them all with their defaults.

use airlock_core::Role;
use airlock_service::{CommonConfig, Secret};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "airlock-gateway", version, about = "Airlock API gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (and team) if needed and print a new API token for it, once.
    CreateToken {
        /// User name.
        #[arg(long)]
        user: String,
        /// Team name.
        #[arg(long)]
        team: String,
        /// admin, researcher or viewer.
        #[arg(long, default_value = "researcher")]
        role: Role,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Directory of the built web UI, served at `/`.
    #[arg(long, env = "AIRLOCK_STATIC_DIR", default_value = "frontend/dist")]
    pub static_dir: PathBuf,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "AIRLOCK_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Requests per minute one user may make (sustained).
    #[arg(long, env = "AIRLOCK_RATE_LIMIT_PER_MINUTE", default_value_t = 6000)]
    pub rate_limit_per_minute: u32,
    /// Requests one user may make in a burst above the sustained rate.
    #[arg(long, env = "AIRLOCK_RATE_LIMIT_BURST", default_value_t = 500)]
    pub rate_limit_burst: u32,
    #[command(flatten)]
    pub identity: IdentityConfig,
}

/// Sign-in: the OpenID Connect provider, browser sessions, the development login.
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityConfig {
    /// The OpenID Connect issuer URL; unset, there is no single sign-on.
    #[arg(long, env = "AIRLOCK_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id registered at the provider.
    #[arg(long, env = "AIRLOCK_OIDC_CLIENT_ID", default_value = "")]
    pub oidc_client_id: String,
    /// The client secret registered at the provider.
    #[arg(long, env = "AIRLOCK_OIDC_CLIENT_SECRET", default_value = "")]
    pub oidc_client_secret: Secret,
    /// The audience API access tokens must carry (default: the client id).
    #[arg(long, env = "AIRLOCK_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The scopes asked for at login.
    #[arg(
        long,
        env = "AIRLOCK_OIDC_SCOPES",
        default_value = "openid profile email"
    )]
    pub oidc_scopes: String,
    /// The claim naming the user's team (a string, or an array whose first matching value counts).
    #[arg(long, env = "AIRLOCK_OIDC_TEAM_CLAIM", default_value = "groups")]
    pub oidc_team_claim: String,
    /// Only team claim values with this prefix count; the prefix is removed.
    #[arg(long, env = "AIRLOCK_OIDC_TEAM_PREFIX", default_value = "")]
    pub oidc_team_prefix: String,
    /// The claim naming the role (admin, researcher or viewer; of several, the highest).
    #[arg(long, env = "AIRLOCK_OIDC_ROLE_CLAIM", default_value = "airlock_role")]
    pub oidc_role_claim: String,
    /// The team of a new user whose token names none.
    #[arg(long, env = "AIRLOCK_OIDC_DEFAULT_TEAM", default_value = "default")]
    pub oidc_default_team: String,
    /// The role of a new user whose token names none.
    #[arg(long, env = "AIRLOCK_OIDC_DEFAULT_ROLE", default_value = "viewer")]
    pub oidc_default_role: Role,
    /// The gateway's external URL (e.g. https://airlock.example.com); the login callback
    /// is `<url>/auth/callback`. Default: `http://<listen address>`.
    #[arg(long, env = "AIRLOCK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Mark session cookies `Secure` (turn off only for plain-http local use).
    #[arg(long, env = "AIRLOCK_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
    /// A browser session ends after this many seconds without a request.
    #[arg(long, env = "AIRLOCK_SESSION_IDLE_SECS", default_value_t = 8 * 3600)]
    pub session_idle_secs: u64,
    /// A browser session ends this many seconds after login, whatever its use.
    #[arg(long, env = "AIRLOCK_SESSION_MAX_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_max_secs: u64,
    /// Offer a sign-in form that trusts the name, team and role typed in (development
    /// only; refused unless the gateway listens on a loopback address).
    #[arg(long, env = "AIRLOCK_DEV_LOGIN", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev_login: bool,
    /// Take the client address from the last `X-Forwarded-For` entry (behind one proxy
    /// that appends it).
    #[arg(long, env = "AIRLOCK_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
    /// Failed sign-ins and bad credentials one address may send per minute before 429.
    #[arg(long, env = "AIRLOCK_AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub auth_failures_per_minute: u32,
    /// Days audit entries are kept (0: forever).
    #[arg(long, env = "AIRLOCK_AUDIT_RETENTION_DAYS", default_value_t = 365)]
    pub audit_retention_days: u32,
}

impl IdentityConfig {
    pub fn defaults() -> Self {
        Self {
            oidc_issuer: None,
            oidc_client_id: String::new(),
            oidc_client_secret: Secret::new(""),
            oidc_audience: None,
            oidc_scopes: "openid profile email".into(),
            oidc_team_claim: "groups".into(),
            oidc_team_prefix: String::new(),
            oidc_role_claim: "airlock_role".into(),
            oidc_default_team: "default".into(),
            oidc_default_role: Role::Viewer,
            public_url: None,
            cookie_secure: true,
            session_idle_secs: 8 * 3600,
            session_max_secs: 7 * 24 * 3600,
            dev_login: false,
            trust_forwarded_for: false,
            auth_failures_per_minute: 30,
            audit_retention_days: 365,
        }
    }

    /// The audience access tokens must carry.
    pub fn audience(&self) -> &str {
        self.oidc_audience
            .as_deref()
            .unwrap_or(&self.oidc_client_id)
    }

    /// Settings that cannot work together, said before serving.
    pub fn check(&self, listen: std::net::SocketAddr) -> Result<(), String> {
        if self.dev_login && !listen.ip().is_loopback() {
            return Err(format!(
                "AIRLOCK_DEV_LOGIN is only allowed when the gateway listens on a loopback address, not {listen}"
            ));
        }
        if self.oidc_issuer.is_some() && self.oidc_client_id.is_empty() {
            return Err("AIRLOCK_OIDC_ISSUER is set but AIRLOCK_OIDC_CLIENT_ID is empty".into());
        }
        if self.session_idle_secs == 0 || self.session_max_secs == 0 {
            return Err("session lifetimes must be positive".into());
        }
        Ok(())
    }
}

impl Config {
    pub fn defaults() -> Self {
        Self {
            common: CommonConfig::defaults(),
            static_dir: PathBuf::from("frontend/dist"),
            max_body_bytes: 10 * 1024 * 1024,
            rate_limit_per_minute: 6000,
            rate_limit_burst: 500,
            identity: IdentityConfig::defaults(),
        }
    }
}

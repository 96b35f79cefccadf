//! The OpenID Connect relying party: the provider's discovery document and key set
//! (fetched on first use, cached, the key set re-fetched when a token names a key it does
//! not hold, so keys rotate without a restart), the authorization request with PKCE, the
//! code exchange and the ID token's validation.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, RwLock};

use super::http::HttpClient;
use super::jwt::{self, JwtError};
use crate::config::IdentityConfig;

/// How long the discovery document and key set are trusted before being fetched again.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// An unknown kid re-fetches the key set at most this often (a flood of bad tokens must
/// not turn into a flood of requests to the provider).
const MIN_KEY_REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider unreachable or answered badly: {0}")]
    Provider(String),
    #[error("token refused: {0}")]
    Token(#[from] JwtError),
    #[error("the ID token's nonce does not match the login request")]
    Nonce,
}

struct Cached<T> {
    value: Arc<T>,
    fetched: Instant,
}

/// One configured provider.
pub struct Oidc {
    /// As configured, without a trailing slash; users are recorded under it (with their
    /// subject), so either spelling in the configuration finds the same people.
    pub issuer: String,
    client_id: String,
    client_secret: airlock_service::Secret,
    audience: String,
    scopes: String,
    http: HttpClient,
    metadata: RwLock<Option<Cached<Metadata>>>,
    keys: RwLock<Option<Cached<JwkSet>>>,
    key_refresh: Mutex<Option<Instant>>,
}

/// What the browser is sent to the provider with, and must be remembered until it returns.
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A random, URL-safe secret of 256 bits.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Oidc {
    /// `None` when no issuer is configured.
    pub fn from_config(config: &IdentityConfig) -> anyhow::Result<Option<Self>> {
        let Some(issuer) = config.oidc_issuer.clone() else {
            return Ok(None);
        };
        let http = HttpClient::new()?;
        Ok(Some(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: config.oidc_client_id.clone(),
            client_secret: config.oidc_client_secret.clone(),
            audience: config.audience().to_owned(),
            scopes: config.oidc_scopes.clone(),
            http,
            metadata: RwLock::new(None),
            keys: RwLock::new(None),
            key_refresh: Mutex::new(None),
        }))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let response = self
            .http
            .get(url)
            .await
            .map_err(|e| OidcError::Provider(format!("GET {url}: {e}")))?;
        if !(200..300).contains(&response.status) {
            return Err(OidcError::Provider(format!(
                "GET {url}: HTTP {}",
                response.status
            )));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| OidcError::Provider(format!("GET {url}: {e}")))
    }

    /// The discovery document, cached; its `issuer` must be exactly the configured one.
    pub async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        if let Some(cached) = self.metadata.read().await.as_ref()
            && cached.fetched.elapsed() < CACHE_TTL
        {
            return Ok(cached.value.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let fetched: Result<Metadata, _> = self.get_json(&url).await;
        let mut slot = self.metadata.write().await;
        match fetched {
            // Providers differ on a trailing slash; configuring it either way works.
            Ok(metadata) if metadata.issuer.trim_end_matches('/') == self.issuer => {
                let value = Arc::new(metadata);
                *slot = Some(Cached {
                    value: value.clone(),
                    fetched: Instant::now(),
                });
                Ok(value)
            }
            Ok(metadata) => Err(OidcError::Provider(format!(
                "discovery names issuer {} instead of {}",
                metadata.issuer, self.issuer
            ))),
            // A stale document is better than none while the provider is briefly away.
            Err(error) => match slot.as_ref() {
                Some(cached) => {
                    tracing::warn!(%error, "using the cached discovery document");
                    Ok(cached.value.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn fetch_keys(&self) -> Result<Arc<JwkSet>, OidcError> {
        let metadata = self.metadata().await?;
        let set: JwkSet = self.get_json(&metadata.jwks_uri).await?;
        let value = Arc::new(set);
        *self.keys.write().await = Some(Cached {
            value: value.clone(),
            fetched: Instant::now(),
        });
        Ok(value)
    }

    /// The cached key set, fetched when missing or old.
    async fn keys(&self) -> Result<Arc<JwkSet>, OidcError> {
        if let Some(cached) = self.keys.read().await.as_ref()
            && cached.fetched.elapsed() < CACHE_TTL
        {
            return Ok(cached.value.clone());
        }
        self.fetch_keys().await
    }

    /// Verifies a token signed by the provider for `audience`. A kid the cached set lacks
    /// re-fetches the set once (rate-limited), which is how rotated keys are picked up.
    async fn verify(&self, token: &str, audience: &str) -> Result<Value, OidcError> {
        let (alg, kid) = jwt::header(token)?;
        let mut keys = self.keys().await?;
        if jwt::find_key(&keys, kid.as_deref()).is_none() {
            let mut last = self.key_refresh.lock().await;
            if last.is_none_or(|at| at.elapsed() >= MIN_KEY_REFRESH) {
                *last = Some(Instant::now());
                keys = self.fetch_keys().await?;
            } else if let Some(cached) = self.keys.read().await.as_ref() {
                keys = cached.value.clone();
            }
        }
        let jwk = jwt::find_key(&keys, kid.as_deref()).ok_or(JwtError::UnknownKey)?;
        // Tokens name the issuer exactly as the provider's discovery document does.
        let issuer = self.metadata().await?.issuer.clone();
        Ok(jwt::verify(token, alg, jwk, &issuer, audience)?)
    }

    /// An API access token: the configured audience.
    pub async fn verify_access_token(&self, token: &str) -> Result<Value, OidcError> {
        self.verify(token, &self.audience).await
    }

    /// Where to send the browser to sign in.
    pub async fn authorization_request(
        &self,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, OidcError> {
        let metadata = self.metadata().await?;
        let state = random_secret();
        let nonce = random_secret();
        let pkce_verifier = random_secret();
        let mut url = url::Url::parse(&metadata.authorization_endpoint)
            .map_err(|e| OidcError::Provider(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&pkce_verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(AuthorizationRequest {
            url: url.into(),
            state,
            nonce,
            pkce_verifier,
        })
    }

    /// Exchanges the code for tokens and returns the validated ID token's claims.
    pub async fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Value, OidcError> {
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: String,
        }
        let metadata = self.metadata().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pkce_verifier),
        ];
        let basic = metadata.token_endpoint_auth_methods_supported.is_empty()
            || metadata
                .token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_basic");
        let response = if basic {
            // RFC 6749 2.3.1: both parts form-urlencoded before base64.
            let credentials = format!(
                "{}:{}",
                form_urlencode(&self.client_id),
                form_urlencode(self.client_secret.expose())
            );
            let authorization = format!("Basic {}", STANDARD.encode(credentials));
            self.http
                .post_form(&metadata.token_endpoint, Some(&authorization), &form)
                .await
        } else {
            let mut with_secret = form.to_vec();
            with_secret.push(("client_id", &self.client_id));
            with_secret.push(("client_secret", self.client_secret.expose()));
            self.http
                .post_form(&metadata.token_endpoint, None, &with_secret)
                .await
        }
        .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?;
        if !(200..300).contains(&response.status) {
            let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            let error = body.get("error").and_then(Value::as_str).unwrap_or("");
            return Err(OidcError::Provider(format!(
                "token endpoint: HTTP {} {error}",
                response.status
            )));
        }
        let tokens: TokenResponse = serde_json::from_slice(&response.body)
            .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?;
        let claims = self.verify(&tokens.id_token, &self.client_id).await?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(OidcError::Nonce);
        }
        // With several audiences, the authorized party must be this client.
        if let Some(Value::Array(audiences)) = claims.get("aud")
            && audiences.len() > 1
            && claims.get("azp").and_then(Value::as_str) != Some(self.client_id.as_str())
        {
            return Err(OidcError::Token(JwtError::WrongAudience));
        }
        Ok(claims)
    }
}

fn form_urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn client_credentials_are_form_encoded() {
        assert_eq!(form_urlencode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
        assert_ne!(random_secret(), random_secret());
        assert_eq!(random_secret().len(), 43);
    }
}

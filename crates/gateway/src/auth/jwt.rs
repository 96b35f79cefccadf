//! Verifying a JSON Web Token signed by the identity provider: the algorithm must be an
//! asymmetric one on the allow-list (never `none`, never an HMAC whose "secret" could be
//! the provider's public key), the key is chosen by `kid` from the provider's key set and
//! must be of the algorithm's family, and issuer, audience, expiry and not-before are
//! checked with a small leeway.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Clock difference tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The only algorithms accepted.
pub const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was refused. The text is for logs and the audit log; clients get 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT or unparseable header")]
    Malformed,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("no key with this kid")]
    UnknownKey,
    #[error("key does not fit the algorithm")]
    KeyMismatch,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("bad signature")]
    BadSignature,
    #[error("invalid claims: {0}")]
    Invalid(String),
}

/// The header fields needed to pick a key: the algorithm (checked against the allow-list)
/// and the key id.
pub fn header(token: &str) -> Result<(Algorithm, Option<String>), JwtError> {
    // An algorithm outside the library's list (e.g. `none`) fails to parse: refused.
    let raw = token.split('.').next().ok_or(JwtError::Malformed)?;
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
        .map_err(|_| JwtError::Malformed)?;
    let value: Value = serde_json::from_slice(&decoded).map_err(|_| JwtError::Malformed)?;
    let alg = value
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Malformed)?;
    let alg = alg
        .parse::<Algorithm>()
        .ok()
        .filter(|alg| ALLOWED.contains(alg))
        .ok_or(JwtError::AlgorithmNotAllowed)?;
    let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
    Ok((alg, kid))
}

/// The key of `set` a token with `kid` names. Without a kid, only a set of exactly one
/// signing key is unambiguous.
pub fn find_key<'a>(set: &'a JwkSet, kid: Option<&str>) -> Option<&'a Jwk> {
    let signing = set.keys.iter().filter(|k| {
        !matches!(
            k.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        )
    });
    match kid {
        Some(kid) => signing
            .into_iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => {
            let keys: Vec<&Jwk> = signing.collect();
            (keys.len() == 1).then(|| keys[0])
        }
    }
}

/// Checks signature and standard claims; returns every claim.
pub fn verify(
    token: &str,
    alg: Algorithm,
    jwk: &Jwk,
    issuer: &str,
    audience: &str,
) -> Result<Value, JwtError> {
    if let Some(key_alg) = jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{alg:?}")
    {
        return Err(JwtError::KeyMismatch);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| JwtError::KeyMismatch)?;
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
                ErrorKind::InvalidAudience => JwtError::WrongAudience,
                ErrorKind::InvalidSignature => JwtError::BadSignature,
                ErrorKind::InvalidAlgorithm => JwtError::KeyMismatch,
                ErrorKind::MissingRequiredClaim(claim) => {
                    JwtError::Invalid(format!("missing {claim}"))
                }
                other => JwtError::Invalid(format!("{other:?}")),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn token_with_header(header: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode("{}")
        )
    }

    #[test]
    fn only_asymmetric_algorithms_pass_the_header_check() {
        for alg in ["none", "None", "HS256", "HS384", "HS512", "XYZ"] {
            let token = token_with_header(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#));
            assert_eq!(header(&token), Err(JwtError::AlgorithmNotAllowed), "{alg}");
        }
        let token = token_with_header(r#"{"alg":"RS256","kid":"k1"}"#);
        assert_eq!(header(&token), Ok((Algorithm::RS256, Some("k1".into()))));
        assert_eq!(header("garbage"), Err(JwtError::Malformed));
    }
}

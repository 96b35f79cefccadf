//! API tokens: `alk_` followed by 43 characters of base64url randomness (256 bits). Only
//! the SHA-256 of a token is stored; the prefix makes leaked tokens recognisable.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "alk_";

/// A new random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    }
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The first characters of a token, kept to recognise it in a list (not enough to guess it).
pub fn prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 4).collect()
}

/// What the database stores and looks tokens up by.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether the text looks like one of our tokens (cheap pre-check before a lookup).
pub fn looks_like_token(text: &str) -> bool {
    text.len() == TOKEN_PREFIX.len() + 43
        && text.starts_with(TOKEN_PREFIX)
        && text[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_recognised() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(looks_like_token(&a), "{a}");
        assert!(!looks_like_token("alk_short"));
        assert_ne!(hash(&a), hash(&b));
    }
}

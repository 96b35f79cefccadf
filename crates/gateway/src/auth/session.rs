//! The browser session cookie and the short-lived cookie that binds a login to the browser
//! that started it. Cookies are HttpOnly and SameSite=Lax, `Secure` unless configured off
//! for plain-http local use; a secure session cookie carries the `__Host-` prefix, so no
//! subdomain can set or shadow it.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// The login-binding cookie (scoped to `/auth`).
pub const LOGIN_COOKIE: &str = "airlock_login";
/// How long a login may take at the provider, in seconds.
pub const LOGIN_MAX_AGE_SECS: i64 = 600;

pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-airlock_session"
    } else {
        "airlock_session"
    }
}

/// The value of the first cookie called `name`.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// Compares secrets in time independent of where they first differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("x_airlock_session=evil; airlock_session=good; other=1"),
        );
        assert_eq!(read_cookie(&headers, "airlock_session"), Some("good"));
        assert_eq!(read_cookie(&headers, "missing"), None);
        let cookie = set_cookie("__Host-airlock_session", "v", "/", 60, true);
        assert_eq!(
            cookie,
            "__Host-airlock_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}

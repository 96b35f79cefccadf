//! Single sign-on against a real OpenID Provider (the certified `oidc-provider`, run by
//! the test harness): the authorization code flow with PKCE through the provider's own
//! login and consent forms, sessions that cannot be fixed in advance, login requests that
//! cannot be replayed or forged, strict validation of provider-issued access tokens, and
//! key rotation picked up without a restart. Secrets never reach the logs.

use airlock_test_support::idp::{Browser, Idp, Signer, sign};
use airlock_test_support::{Api, Service, Stack, StackOptions};
use serde_json::{Value, json};

fn users() -> Value {
    json!({
        "alice": {"groups": ["staff", "airlock-red"], "airlock_role": "admin", "email": "alice@example.com"},
        "ci": {"groups": ["airlock-red"], "airlock_role": "researcher"}
    })
}

async fn stack_for(idp: &Idp) -> Stack {
    stack_for_issuer(&idp.issuer).await
}

/// The stack with the issuer spelled as given (providers differ on a trailing slash).
async fn stack_for_issuer(issuer: &str) -> Stack {
    let gateway = |key: &str, value: &str| (Service::Gateway, key.to_owned(), value.to_owned());
    Stack::start(StackOptions {
        env: vec![
            gateway("AIRLOCK_OIDC_ISSUER", issuer),
            gateway("AIRLOCK_OIDC_CLIENT_ID", "airlock"),
            gateway("AIRLOCK_OIDC_CLIENT_SECRET", "airlock-secret"),
            gateway("AIRLOCK_OIDC_TEAM_PREFIX", "airlock-"),
            gateway("AIRLOCK_COOKIE_SECURE", "false"),
            gateway("AIRLOCK_AUTH_FAILURES_PER_MINUTE", "1000"),
        ],
        ..StackOptions::default()
    })
    .await
}

async fn me(base: &str, token: &str) -> (u16, Value) {
    let reply = Api::new(base, token).get("/api/v1/me").await;
    (reply.status, reply.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_access_tokens_are_validated_strictly() {
    let idp = Idp::start(users()).await;
    let stack = stack_for(&idp).await;
    let base = stack.url(Service::Gateway);

    // A real token of the machine client: its team and role come from its claims.
    let real = idp
        .client_credentials("evaluations:read evaluations:write")
        .await;
    let (status, body) = me(&base, &real).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["auth"], &body["team"], &body["role"], &body["user"]),
        (
            &json!("jwt"),
            &json!("red"),
            &json!("researcher"),
            &json!("ci")
        )
    );
    assert_eq!(
        body["scopes"],
        json!(["evaluations:read", "evaluations:write"])
    );
    let ci = Api::new(&base, &real);
    let id = ci
        .submit_ok(&json!({"name": "from ci", "image": "img", "command": ["true"]}))
        .await;
    let cancel = ci.post(&format!("/api/v1/evaluations/{id}/cancel")).await;
    assert_eq!(cancel.body["code"], "insufficient_scope");

    // Hand-made tokens: only the one a provider would issue passes.
    let key = idp.key().clone();
    let kid = key["kid"].as_str().expect("kid").to_owned();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": idp.issuer, "aud": "airlock", "sub": "ci", "iat": now,
                        "exp": now + 300, "scope": "evaluations:read"});
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let rs256 = json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"});
    let good = sign(&rs256, &claims, Signer::Key(&key)).await;
    assert_eq!(
        me(&base, &good).await.0,
        200,
        "a correctly made token passes"
    );

    let mut tampered_parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    tampered_parts[1] = base64_url(&with("sub", json!("someone-else")));
    let cases = vec![
        (
            "expired",
            sign(&rs256, &with("exp", json!(now - 120)), Signer::Key(&key)).await,
        ),
        (
            "not yet valid",
            sign(&rs256, &with("nbf", json!(now + 600)), Signer::Key(&key)).await,
        ),
        (
            "wrong audience",
            sign(
                &rs256,
                &with("aud", json!("another-api")),
                Signer::Key(&key),
            )
            .await,
        ),
        (
            "wrong issuer",
            sign(
                &rs256,
                &with("iss", json!("http://evil.example")),
                Signer::Key(&key),
            )
            .await,
        ),
        (
            "no subject",
            sign(
                &rs256,
                &{
                    let mut c = claims.clone();
                    c.as_object_mut().expect("object").remove("sub");
                    c
                },
                Signer::Key(&key),
            )
            .await,
        ),
        (
            "unknown kid",
            sign(
                &json!({"alg": "RS256", "kid": "not-a-key"}),
                &claims,
                Signer::Key(&key),
            )
            .await,
        ),
        (
            "alg none",
            sign(
                &json!({"alg": "none", "kid": kid}),
                &claims,
                Signer::Unsigned,
            )
            .await,
        ),
        (
            "HS256 keyed with the public key",
            sign(
                &json!({"alg": "HS256", "kid": kid}),
                &claims,
                Signer::HmacWithPublicKey(&key),
            )
            .await,
        ),
        ("tampered payload", tampered_parts.join(".")),
        ("signature of another key", {
            let other = Idp::start(json!({})).await;
            let forged = sign(&rs256, &claims, Signer::Key(other.key())).await;
            other.stop().await;
            forged
        }),
    ];
    for (what, token) in &cases {
        let (status, body) = me(&base, token).await;
        assert_eq!(
            (status, &body["code"]),
            (401, &json!("unauthorized")),
            "{what}"
        );
    }
    let admin = Api::new(&base, &stack.token("root", "red", "admin").await);
    let failures = admin
        .get("/api/v1/audit?action=login_failed&limit=200")
        .await;
    let entries = failures.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), cases.len());
    assert!(entries.iter().all(|e| e["detail"]["method"] == "jwt"));

    let log = stack.log(Service::Gateway);
    for (_, token) in &cases {
        assert!(!log.contains(token.as_str()), "a token reached the log");
    }
    assert!(!log.contains(&real) && !log.contains(&good));
    stack.stop().await;
    idp.stop().await;
}

fn base64_url(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_provider_keys_are_picked_up_without_a_restart() {
    let idp = Idp::start(users()).await;
    // Configured with a trailing slash the provider's own issuer lacks: still the same.
    let stack = stack_for_issuer(&format!("{}/", idp.issuer)).await;
    let base = stack.url(Service::Gateway);
    let before = idp.client_credentials("evaluations:read").await;
    assert_eq!(me(&base, &before).await.0, 200);

    let idp = idp.rotate_keys().await;
    let after = idp.client_credentials("evaluations:read").await;
    assert_eq!(me(&base, &after).await.0, 200, "the new key is fetched");
    assert_eq!(
        me(&base, &before).await.0,
        401,
        "a token of a key the provider no longer publishes is refused"
    );
    stack.stop().await;
    idp.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_through_the_provider_starts_a_fresh_session() {
    let idp = Idp::start(users()).await;
    let stack = stack_for(&idp).await;
    let base = stack.url(Service::Gateway);
    let config: Value = reqwest::get(format!("{base}/api/v1/auth/config"))
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config, json!({"oidc": true, "dev_login": false}));

    // An attacker's session id planted beforehand is not adopted.
    let mut browser = Browser::new();
    browser
        .jar
        .insert("airlock_session".into(), "planted-by-attacker".into());
    let signed_in = browser
        .sign_in(&base, "/evaluations?status=running", "alice")
        .await;
    assert_eq!(
        signed_in.location.as_str(),
        format!("{base}/evaluations?status=running"),
        "back on the page she asked for"
    );
    let session_cookie = signed_in
        .set_cookies
        .iter()
        .find(|c| c.starts_with("airlock_session="))
        .expect("a session cookie");
    assert!(
        session_cookie.contains("HttpOnly")
            && session_cookie.contains("SameSite=Lax")
            && session_cookie.contains("Path=/"),
        "{session_cookie}"
    );
    let session = browser.jar["airlock_session"].clone();
    assert_ne!(session, "planted-by-attacker");
    assert!(
        !browser.jar.contains_key("airlock_login"),
        "the login cookie is cleared"
    );

    let me_reply = browser
        .request("GET", &format!("{base}/api/v1/me"), None)
        .await;
    let me: Value = serde_json::from_str(&me_reply.body).expect("json");
    assert_eq!(
        (
            &me["user"],
            &me["team"],
            &me["role"],
            &me["email"],
            &me["auth"]
        ),
        (
            &json!("alice"),
            &json!("red"),
            &json!("admin"),
            &json!("alice@example.com"),
            &json!("session")
        )
    );

    // The provider's answer cannot be replayed, nor delivered to another browser.
    let mut replay = Browser::new();
    let stolen = replay
        .request("GET", signed_in.callback.as_str(), None)
        .await;
    assert_eq!(
        stolen.headers["location"].to_str().ok(),
        Some("/sign-in?error=login_failed"),
        "a callback without this browser's login cookie fails"
    );
    let state = signed_in
        .callback
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    replay.jar.insert("airlock_login".into(), state);
    let replayed = replay
        .request("GET", signed_in.callback.as_str(), None)
        .await;
    assert_eq!(
        replayed.headers["location"].to_str().ok(),
        Some("/sign-in?error=login_expired"),
        "a used login request cannot be used again"
    );

    // Signing in again (same person, same user) rotates the session.
    let again = browser.sign_in(&base, "/", "alice").await;
    assert_eq!(again.location.as_str(), format!("{base}/"));
    assert_ne!(browser.jar["airlock_session"], session);
    let mut old = Browser::new();
    old.jar.insert("airlock_session".into(), session.clone());
    assert_eq!(
        old.request("GET", &format!("{base}/api/v1/me"), None)
            .await
            .status,
        401
    );

    // Someone the provider knows nothing more about gets the defaults.
    let mut bob = Browser::new();
    bob.sign_in(&base, "/", "bob").await;
    let bob_me: Value = serde_json::from_str(
        &bob.request("GET", &format!("{base}/api/v1/me"), None)
            .await
            .body,
    )
    .expect("json");
    assert_eq!(
        (&bob_me["team"], &bob_me["role"]),
        (&json!("default"), &json!("viewer"))
    );

    let admin = Api::new(&base, &stack.token("root", "red", "admin").await);
    let logins = admin.get("/api/v1/audit?action=login").await.body;
    let names: Vec<&str> = logins["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["actor"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["alice", "alice"],
        "red's admin sees red's logins only"
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE name = 'alice'")
        .fetch_one(&stack.db.connect().await)
        .await
        .expect("count");
    assert_eq!(users, 1, "the second login found the same user");

    let log = stack.log(Service::Gateway);
    assert!(
        !log.contains("airlock-secret"),
        "the client secret reached the log"
    );
    assert!(!log.contains(&session), "a session id reached the log");
    let code = signed_in
        .callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    assert!(
        !log.contains(&code),
        "an authorization code reached the log"
    );
    stack.stop().await;
    idp.stop().await;
}

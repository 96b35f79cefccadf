//! Who may do what, proven through the public API: API tokens (shown once, hashed,
//! scoped, expiring, revocable), scopes against roles, team administration, browser
//! sessions with CSRF and origin checks, failed sign-ins limited per address, the audit
//! log, and a matrix over every documented endpoint and the WebSockets showing that
//! nothing of one team reaches another.

use airlock_test_support::{Api, Service, SocketAuth, Stack, StackOptions};
use serde_json::{Value, json};
use std::time::Duration;

fn spec(name: &str) -> Value {
    json!({"name": name, "image": "img", "command": ["true"]})
}

fn code(reply: &airlock_test_support::client::Reply) -> (u16, Option<&str>) {
    (reply.status, reply.body["code"].as_str())
}

async fn audit_actions(admin: &Api, action: &str) -> Vec<Value> {
    let reply = admin
        .get(&format!("/api/v1/audit?action={action}&limit=200"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["entries"].as_array().expect("entries").clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_are_shown_once_scoped_expiring_and_revocable() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.api(&stack.token("alice", "red", "admin").await);
    let victor = stack.api(&stack.token("victor", "red", "viewer").await);
    let bob = stack.api(&stack.token("bob", "blue", "admin").await);

    let created = alice
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "nightly ci", "scopes": ["evaluations:read"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().expect("secret").to_owned();
    let token_id = created.body["token"]["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with("alk_") && secret.len() == 47, "{secret}");
    assert_eq!(created.body["token"]["prefix"], json!(&secret[..8]));
    assert_eq!(created.body["token"]["scopes"], json!(["evaluations:read"]));

    // Stored by hash only: the secret is nowhere in the database.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE position($1 in encode(token_hash, 'escape')) > 0
            OR name = $1 OR prefix = $1",
    )
    .bind(&secret)
    .fetch_one(&stack.db.connect().await)
    .await
    .expect("query");
    assert_eq!(stored, 0);
    let listed = alice.get("/api/v1/tokens").await;
    assert!(
        !listed.body.to_string().contains(&secret),
        "never shown again"
    );
    assert_eq!(listed.body["tokens"][0]["last_used_at"], Value::Null);

    // The token does what its scopes say, no more, and its use is recorded.
    let reader = stack.api(&secret);
    let me = reader.get("/api/v1/me").await;
    assert_eq!(me.body["auth"], "api_token");
    assert_eq!(me.body["scopes"], json!(["evaluations:read"]));
    assert_eq!(reader.get("/api/v1/evaluations").await.status, 200);
    assert_eq!(
        code(&reader.submit(&spec("x")).await),
        (403, Some("insufficient_scope"))
    );
    let listed = alice.get("/api/v1/tokens").await;
    assert!(listed.body["tokens"][0]["last_used_at"].is_string());

    // A token can only pass on what it has; a role only what it allows.
    let escalate = reader
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "more", "scopes": ["evaluations:write"]}),
        )
        .await;
    assert_eq!(code(&escalate), (422, Some("validation_failed")));
    assert_eq!(
        escalate.body["details"]["errors"][0]["code"],
        "scope_not_allowed"
    );
    let viewer_write = victor
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "w", "scopes": ["evaluations:read", "admin"]}),
        )
        .await;
    assert_eq!(
        viewer_write.body["details"]["errors"][0],
        json!({"path": "scopes[1]", "code": "scope_not_allowed",
               "message": viewer_write.body["details"]["errors"][0]["message"]})
    );
    let invalid = alice
        .post_json(
            "/api/v1/tokens",
            &json!({"scopes": ["evaluations:delete"], "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    let problems: Vec<(String, String)> = invalid.body["details"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap_or("").into(),
                e["code"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        vec![
            ("name".into(), "required".into()),
            ("scopes[0]".into(), "unknown_scope".into()),
            ("expires_at".into(), "in_past".into()),
        ]
    );
    let malformed = alice
        .post_body("/api/v1/tokens", "application/json", "{not json")
        .await;
    assert_eq!(code(&malformed), (400, Some("malformed_request")));

    // Expired tokens stop working.
    let expiring = alice
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "short", "scopes": ["evaluations:read"],
                    "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    let expiring_api = stack.api(expiring.body["secret"].as_str().expect("secret"));
    assert_eq!(expiring_api.get("/api/v1/me").await.status, 200);
    sqlx::query(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(expiring.body["token"]["id"].as_str())
    .execute(&stack.db.connect().await)
    .await
    .expect("expire");
    assert_eq!(
        code(&expiring_api.get("/api/v1/me").await),
        (401, Some("unauthorized"))
    );

    // Revocation: only by the owner (others do not find it), immediate, idempotent.
    assert_eq!(
        bob.delete(&format!("/api/v1/tokens/{token_id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        victor
            .delete(&format!("/api/v1/tokens/{token_id}"))
            .await
            .status,
        404
    );
    assert_eq!(reader.get("/api/v1/me").await.status, 200);
    assert_eq!(
        alice
            .delete(&format!("/api/v1/tokens/{token_id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        code(&reader.get("/api/v1/me").await),
        (401, Some("unauthorized"))
    );
    assert_eq!(
        alice
            .delete(&format!("/api/v1/tokens/{token_id}"))
            .await
            .status,
        204
    );
    let listed = alice.get("/api/v1/tokens").await;
    let revoked = listed.body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == json!(token_id))
        .expect("still listed");
    assert!(revoked["revoked_at"].is_string());

    let created = audit_actions(&alice, "token.create").await;
    assert_eq!(created.len(), 2, "{created:?}");
    assert_eq!(created[1]["actor"]["name"], "alice");
    assert_eq!(created[1]["object_id"], json!(token_id));
    assert_eq!(created[1]["source_address"], "127.0.0.1");
    let revokes = audit_actions(&alice, "token.revoke").await;
    assert_eq!(revokes.len(), 1, "revoking twice is recorded once");
    assert!(
        !stack.log(Service::Gateway).contains(&secret),
        "the secret never reaches the logs"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scope_allows_exactly_its_actions() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.api(&stack.token("alice", "red", "admin").await);
    let id = alice.submit_ok(&spec("scoped")).await;
    alice.wait_finished(&id, Duration::from_secs(60)).await;

    let scopes = [
        "evaluations:read",
        "evaluations:write",
        "evaluations:cancel",
        "admin",
    ];
    for scope in scopes {
        let created = alice
            .post_json("/api/v1/tokens", &json!({"name": scope, "scopes": [scope]}))
            .await;
        let api = stack.api(created.body["secret"].as_str().expect("secret"));
        // (scope it needs, status when allowed, status got)
        let checks: Vec<(&str, u16, u16)> = vec![
            (
                "evaluations:read",
                200,
                api.get("/api/v1/evaluations").await.status,
            ),
            (
                "evaluations:read",
                200,
                api.get(&format!("/api/v1/evaluations/{id}")).await.status,
            ),
            (
                "evaluations:read",
                200,
                api.get("/api/v1/system").await.status,
            ),
            (
                "evaluations:read",
                101,
                match api.open_socket("/api/v1/stream", SocketAuth::Header).await {
                    Ok(_) => 101,
                    Err(status) => status,
                },
            ),
            (
                "evaluations:write",
                201,
                api.submit(&spec("by token")).await.status,
            ),
            (
                // The evaluation has finished: allowed to ask, told it is too late.
                "evaluations:cancel",
                409,
                api.post(&format!("/api/v1/evaluations/{id}/cancel"))
                    .await
                    .status,
            ),
            ("admin", 200, api.get("/api/v1/team/members").await.status),
            ("admin", 200, api.get("/api/v1/audit").await.status),
            (
                "admin",
                200,
                api.get("/api/v1/service-accounts").await.status,
            ),
        ];
        for (needed, allowed, status) in checks {
            if needed == scope {
                assert_eq!(status, allowed, "{scope} allows what needs {needed}");
            } else {
                assert_eq!(status, 403, "{scope} must not allow what needs {needed}");
            }
        }
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_manage_roles_and_service_accounts_and_keep_an_admin() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.api(&stack.token("alice", "red", "admin").await);
    let carol = stack.api(&stack.token("carol", "red", "researcher").await);

    assert_eq!(
        code(&carol.get("/api/v1/team/members").await),
        (403, Some("forbidden"))
    );
    let members = alice.get("/api/v1/team/members").await;
    let names: Vec<&str> = members.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, vec!["alice", "carol"]);
    let id_of = |name: &str| {
        members.body["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["id"].as_str())
            .expect("member")
            .to_owned()
    };
    let (alice_id, carol_id) = (id_of("alice"), id_of("carol"));

    // A role change takes effect on the next request.
    assert_eq!(carol.submit(&spec("before")).await.status, 201);
    let changed = alice
        .patch_json(
            &format!("/api/v1/team/members/{carol_id}"),
            &json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(
        (changed.status, &changed.body["role"]),
        (200, &json!("viewer"))
    );
    assert_eq!(
        code(&carol.submit(&spec("after")).await),
        (403, Some("forbidden"))
    );
    let last = alice
        .patch_json(
            &format!("/api/v1/team/members/{alice_id}"),
            &json!({"role": "researcher"}),
        )
        .await;
    assert_eq!(code(&last), (409, Some("last_admin")));
    let bad_role = alice
        .patch_json(
            &format!("/api/v1/team/members/{carol_id}"),
            &json!({"role": "owner"}),
        )
        .await;
    assert_eq!(code(&bad_role), (400, Some("malformed_request")));

    // A service account for CI, with its own token.
    let account = alice
        .post_json(
            "/api/v1/service-accounts",
            &json!({"name": "red-ci", "role": "researcher"}),
        )
        .await;
    assert_eq!(account.status, 201, "{}", account.body);
    assert_eq!(account.body["kind"], "service");
    let account_id = account.body["id"].as_str().expect("id").to_owned();
    let taken = alice
        .post_json(
            "/api/v1/service-accounts",
            &json!({"name": "red-ci", "role": "viewer"}),
        )
        .await;
    assert_eq!(code(&taken), (409, Some("conflict")));
    let beyond = alice
        .post_json(
            &format!("/api/v1/service-accounts/{account_id}/tokens"),
            &json!({"name": "ci", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(
        beyond.body["details"]["errors"][0]["code"],
        "scope_not_allowed"
    );
    let token = alice
        .post_json(
            &format!("/api/v1/service-accounts/{account_id}/tokens"),
            &json!({"name": "ci", "scopes": ["evaluations:read", "evaluations:write"]}),
        )
        .await;
    assert_eq!(token.status, 201);
    let ci = stack.api(token.body["secret"].as_str().expect("secret"));
    let submitted = ci.submit(&spec("from ci")).await;
    assert_eq!(submitted.status, 201);
    assert_eq!(submitted.body["owner"], "red-ci");
    let token_id = token.body["token"]["id"].as_str().expect("id");
    assert_eq!(
        alice
            .delete(&format!("/api/v1/tokens/{token_id}"))
            .await
            .status,
        204
    );
    assert_eq!(ci.get("/api/v1/me").await.status, 401);

    let changes = audit_actions(&alice, "role.change").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["detail"]["from"], "researcher");
    assert_eq!(changes[0]["detail"]["to"], "viewer");
    assert_eq!(
        audit_actions(&alice, "service_account.create").await.len(),
        1
    );
    let submits = audit_actions(&alice, "evaluation.submit").await;
    let actors: Vec<&str> = submits
        .iter()
        .filter_map(|e| e["actor"]["name"].as_str())
        .collect();
    assert_eq!(actors, vec!["red-ci", "carol"]);
    stack.stop().await;
}

/// A client holding a browser session (the development login), with its cookie.
struct BrowserSession {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl BrowserSession {
    async fn sign_in(
        base: &str,
        user: &str,
        team: &str,
        role: &str,
        presented: Option<&str>,
    ) -> Self {
        let http = reqwest::Client::new();
        let mut request = http
            .post(format!("{base}/auth/dev-login"))
            .json(&json!({"user": user, "team": team, "role": role}));
        if let Some(cookie) = presented {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("dev login");
        assert_eq!(response.status(), 204);
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_owned();
        assert!(
            set_cookie.contains("HttpOnly")
                && set_cookie.contains("SameSite=Lax")
                && set_cookie.contains("Path=/"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().expect("pair").to_owned();
        let mut session = Self {
            http,
            base: base.to_owned(),
            cookie,
            csrf: String::new(),
        };
        let me = session.send("GET", "/api/v1/me", None, None).await;
        assert_eq!(me.body["auth"], "session");
        session.csrf = me.body["csrf_token"].as_str().expect("csrf").to_owned();
        session
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        csrf: Option<&str>,
        origin: Option<&str>,
    ) -> airlock_test_support::client::Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/json")
            .body(json!({"name": "from the browser", "scopes": ["evaluations:read"]}).to_string());
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        Api::reply(request.send().await.expect("request")).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_sessions_need_their_csrf_token_and_origin_and_end_cleanly() {
    let stack = Stack::start(StackOptions {
        env: vec![
            (Service::Gateway, "AIRLOCK_DEV_LOGIN".into(), "true".into()),
            (
                Service::Gateway,
                "AIRLOCK_COOKIE_SECURE".into(),
                "false".into(),
            ),
        ],
        ..StackOptions::default()
    })
    .await;
    let base = stack.url(Service::Gateway);
    let config: Value = reqwest::get(format!("{base}/api/v1/auth/config"))
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config, json!({"oidc": false, "dev_login": true}));

    // A session id chosen by someone else is never adopted.
    let session = BrowserSession::sign_in(
        &base,
        "dana",
        "red",
        "admin",
        Some("airlock_session=fixed-by-attacker"),
    )
    .await;
    assert_ne!(session.cookie, "airlock_session=fixed-by-attacker");

    // State changes need the session's CSRF token, from our own origin.
    let own_origin = base.clone();
    for (csrf, origin, expected) in [
        (None, None, (403, Some("csrf_failed"))),
        (Some("wrong"), None, (403, Some("csrf_failed"))),
        (
            Some(session.csrf.as_str()),
            Some("http://evil.example"),
            (403, Some("csrf_failed")),
        ),
    ] {
        let reply = session.send("POST", "/api/v1/tokens", csrf, origin).await;
        assert_eq!(code(&reply), expected, "csrf {csrf:?} origin {origin:?}");
    }
    let reply = session
        .send(
            "POST",
            "/api/v1/tokens",
            Some(&session.csrf),
            Some(&own_origin),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        session
            .send("GET", "/api/v1/tokens", None, None)
            .await
            .status,
        200
    );

    // The WebSocket takes the cookie, but only from our own origin.
    let api = Api::new(&base, "");
    let socket = |origin: &str| SocketAuth::Cookie {
        cookie: session.cookie.clone(),
        origin: Some(origin.to_owned()),
    };
    assert_eq!(
        api.open_socket("/api/v1/stream", socket("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert!(
        api.open_socket("/api/v1/stream", socket(&own_origin))
            .await
            .is_ok()
    );

    // Signing in again replaces the session; idle and old sessions end.
    let again = BrowserSession::sign_in(&base, "dana", "red", "admin", Some(&session.cookie)).await;
    assert_ne!(again.cookie, session.cookie);
    assert_eq!(
        session.send("GET", "/api/v1/me", None, None).await.status,
        401
    );
    let idle = BrowserSession::sign_in(&base, "erin", "red", "viewer", None).await;
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '9 hours'")
        .execute(&stack.db.connect().await)
        .await
        .expect("age sessions");
    assert_eq!(idle.send("GET", "/api/v1/me", None, None).await.status, 401);
    let fresh = BrowserSession::sign_in(&base, "erin", "red", "viewer", None).await;
    assert_eq!(
        fresh.send("GET", "/api/v1/me", None, None).await.status,
        200
    );

    // Logout needs the CSRF token, then the cookie is worthless.
    assert_eq!(
        code(&fresh.send("POST", "/auth/logout", None, None).await),
        (403, Some("csrf_failed"))
    );
    let out = fresh
        .send("POST", "/auth/logout", Some(&fresh.csrf), None)
        .await;
    assert_eq!(out.status, 204);
    let cleared = out
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        cleared.starts_with("airlock_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(
        fresh.send("GET", "/api/v1/me", None, None).await.status,
        401
    );

    let admin = stack.api(&stack.token("root", "red", "admin").await);
    let logins = audit_actions(&admin, "login").await;
    assert_eq!(logins.len(), 4);
    assert_eq!(logins[0]["detail"]["method"], "dev_login");
    assert_eq!(audit_actions(&admin, "logout").await.len(), 1);
    let log = stack.log(Service::Gateway);
    for secret in [&session.cookie, &again.cookie, &session.csrf, &fresh.csrf] {
        let value = secret.rsplit('=').next().unwrap_or(secret);
        assert!(!log.contains(value), "a session secret reached the log");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_development_login_is_off_by_default_and_never_on_a_public_address() {
    let stack = Stack::start(StackOptions::default()).await;
    let reply = reqwest::Client::new()
        .post(format!("{}/auth/dev-login", stack.url(Service::Gateway)))
        .json(&json!({"user": "mallory", "team": "red", "role": "admin"}))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), 404);
    assert_eq!(
        reqwest::get(format!("{}/auth/login", stack.url(Service::Gateway)))
            .await
            .expect("request")
            .status(),
        503,
        "no single sign-on without a provider"
    );

    let output = tokio::process::Command::new(airlock_test_support::binary("airlock-gateway"))
        .env_clear()
        .env("AIRLOCK_HTTP_ADDR", "0.0.0.0:0")
        .env("AIRLOCK_DEV_LOGIN", "true")
        .env("AIRLOCK_DATABASE_URL", &stack.db.url)
        .env("AIRLOCK_AMQP_URL", stack.broker.url())
        .output()
        .await
        .expect("run the gateway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AIRLOCK_DEV_LOGIN is only allowed") && stderr.contains("loopback"),
        "{stderr}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_are_recorded_and_limited_per_address() {
    let stack = Stack::start(StackOptions {
        env: vec![(
            Service::Gateway,
            "AIRLOCK_AUTH_FAILURES_PER_MINUTE".into(),
            "5".into(),
        )],
        ..StackOptions::default()
    })
    .await;
    let admin = stack.api(&stack.token("alice", "red", "admin").await);
    let forged = stack.api(&format!("alk_{}", "x".repeat(43)));
    for _ in 0..5 {
        assert_eq!(
            code(&forged.get("/api/v1/me").await),
            (401, Some("unauthorized"))
        );
    }
    let limited = forged.get("/api/v1/me").await;
    assert_eq!(code(&limited), (429, Some("rate_limited")));
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        admin.get("/api/v1/me").await.status,
        200,
        "good credentials still pass"
    );

    let failures = audit_actions(&admin, "login_failed").await;
    assert_eq!(
        failures.len(),
        5,
        "the flood past the limit is not recorded"
    );
    assert_eq!(failures[0]["outcome"], "failure");
    assert_eq!(failures[0]["actor"], Value::Null);
    assert_eq!(failures[0]["source_address"], "127.0.0.1");
    assert_eq!(failures[0]["detail"]["method"], "api_token");
    let page = admin.get("/api/v1/audit?action=login_failed&limit=2").await;
    let cursor = page.body["next_cursor"].as_str().expect("more pages");
    let next = admin
        .get(&format!(
            "/api/v1/audit?action=login_failed&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(next.body["entries"][0]["id"], failures[2]["id"]);
    assert_eq!(admin.get("/api/v1/audit?cursor=nope").await.status, 400);
    stack.stop().await;
}

/// Every id of `team` a path template could name, by the path's resource.
fn ids_for(path: &str, ids: &RedIds) -> Vec<String> {
    let resource = path.trim_start_matches("/api/v1/");
    let pick: Vec<&String> = if resource.starts_with("evaluations") {
        vec![&ids.evaluation]
    } else if resource.starts_with("runs") {
        vec![&ids.run]
    } else if resource.starts_with("tokens") {
        vec![&ids.token, &ids.service_token]
    } else if resource.starts_with("service-accounts") {
        vec![&ids.service_account]
    } else if resource.starts_with("team/members") {
        vec![&ids.user, &ids.service_account]
    } else {
        vec![
            &ids.evaluation,
            &ids.run,
            &ids.token,
            &ids.user,
            &ids.service_account,
        ]
    };
    pick.into_iter().cloned().collect()
}

struct RedIds {
    evaluation: String,
    run: String,
    token: String,
    service_token: String,
    service_account: String,
    user: String,
}

fn body_for(path: &str, method: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/api/v1/evaluations") => Some(spec("blue work")),
        ("post", p) if p.ends_with("/tokens") => {
            Some(json!({"name": "probe", "scopes": ["evaluations:read"]}))
        }
        ("post", "/api/v1/service-accounts") => {
            Some(json!({"name": "blue-probe", "role": "viewer"}))
        }
        ("patch", _) => Some(json!({"role": "viewer"})),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_endpoint_or_stream_reveals_another_teams_objects() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.api(&stack.token("alice", "red", "admin").await);
    let bob = stack.api(&stack.token("bob", "blue", "admin").await);

    let evaluation = alice.submit_ok(&spec("red-secret-evaluation")).await;
    let finished = alice
        .wait_finished(&evaluation, Duration::from_secs(60))
        .await;
    let token = alice
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "red-secret-token", "scopes": ["admin"]}),
        )
        .await;
    let account = alice
        .post_json(
            "/api/v1/service-accounts",
            &json!({"name": "red-secret-bot", "role": "viewer"}),
        )
        .await;
    let account_id = account.body["id"].as_str().expect("id").to_owned();
    let service_token = alice
        .post_json(
            &format!("/api/v1/service-accounts/{account_id}/tokens"),
            &json!({"name": "red-bot-token", "scopes": ["evaluations:read"]}),
        )
        .await;
    let ids = RedIds {
        evaluation: evaluation.clone(),
        run: finished["runs"][0]["id"].as_str().expect("run").to_owned(),
        token: token.body["token"]["id"].as_str().expect("id").to_owned(),
        service_token: service_token.body["token"]["id"]
            .as_str()
            .expect("id")
            .to_owned(),
        service_account: account_id,
        user: alice.get("/api/v1/me").await.body["user_id"]
            .as_str()
            .expect("id")
            .to_owned(),
    };
    let red_marks = [
        ids.evaluation.as_str(),
        ids.run.as_str(),
        ids.token.as_str(),
        ids.service_token.as_str(),
        ids.service_account.as_str(),
        ids.user.as_str(),
        "red-secret",
        "alice",
    ];

    // Bob watches his team's stream from before anything else happens.
    let mut team_stream = bob
        .open_socket("/api/v1/stream", SocketAuth::Header)
        .await
        .expect("team stream");

    let document = bob.get("/api/v1/openapi.json").await.body;
    let paths = document["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (template, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            let concrete: Vec<String> = if template.contains('{') {
                ids_for(template, &ids)
                    .into_iter()
                    .map(|id| template.replace("{id}", &id))
                    .collect()
            } else {
                vec![template.clone()]
            };
            for path in concrete {
                if path.ends_with("/stream") {
                    let opened = bob.open_socket(&path, SocketAuth::Header).await;
                    if template.contains('{') {
                        assert_eq!(opened.err(), Some(404), "{path}");
                    }
                    checked += 1;
                    continue;
                }
                let reply = bob
                    .send(
                        &method.to_uppercase(),
                        &path,
                        body_for(template, method).as_ref(),
                    )
                    .await;
                if template.contains('{') {
                    assert_eq!(
                        code(&reply),
                        (404, Some("not_found")),
                        "{method} {path} must not find red's object"
                    );
                }
                assert!(reply.status < 500, "{method} {path} failed: {}", reply.body);
                let text = reply.body.to_string();
                for mark in red_marks {
                    assert!(
                        !text.contains(mark),
                        "{method} {path} revealed {mark}: {text}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "the matrix covered {checked} requests");
    // Red's objects are untouched by all of it.
    assert_eq!(
        stack
            .api(token.body["secret"].as_str().expect("secret"))
            .get("/api/v1/me")
            .await
            .status,
        200
    );
    assert_eq!(
        alice
            .get(&format!("/api/v1/evaluations/{evaluation}"))
            .await
            .status,
        200
    );

    // The team stream carried blue's own work and nothing of red's.
    let red_again = alice.submit_ok(&spec("red-secret-second")).await;
    let blue = bob.submit_ok(&spec("blue-marker")).await;
    loop {
        let frame = team_stream
            .next(Duration::from_secs(30))
            .await
            .expect("blue's evaluation arrives on blue's stream");
        let text = frame.to_string();
        assert!(
            !text.contains(&red_again) && !text.contains("red-secret"),
            "{text}"
        );
        if text.contains(&blue) {
            break;
        }
    }
    stack.stop().await;
}

//! The API as a careless or hostile client meets it: bad specs, bad bodies, bad tokens,
//! other teams' ids, roles that may not act. Every refusal has its status and stable
//! code, and nothing refused is ever written.

use airlock_test_support::{Service, Stack, StackOptions};
use serde_json::{Value, json};
use std::time::Duration;

fn valid() -> Value {
    json!({"name": "ok", "image": "img", "command": ["true"]})
}

fn with(key: &str, value: Value) -> Value {
    let mut spec = valid();
    spec[key] = value;
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_requests_are_refused_with_stable_codes_and_write_nothing() {
    let stack = Stack::start(StackOptions {
        env: vec![(
            Service::Gateway,
            "AIRLOCK_MAX_BODY_BYTES".into(),
            "65536".into(),
        )],
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);

    let many_tasks: Vec<Value> = (0..5)
        .map(|i| json!({"id": if i == 3 { "t0".to_owned() } else { format!("t{i}") }}))
        .collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (with("name", json!("")), "name", "out_of_range"),
        (with("name", json!("n".repeat(101))), "name", "out_of_range"),
        (
            with("image", json!("not an image")),
            "image",
            "invalid_format",
        ),
        (with("command", json!([])), "command", "out_of_range"),
        (with("command", json!("echo hi")), "command", "wrong_type"),
        (with("tasks", json!([])), "tasks", "out_of_range"),
        (
            with("tasks", Value::Array(many_tasks)),
            "tasks[3].id",
            "duplicate",
        ),
        (with("epochs", json!(0)), "epochs", "out_of_range"),
        (with("epochs", json!(101)), "epochs", "out_of_range"),
        (
            with("resources", json!({"cpu": "fast"})),
            "resources.cpu",
            "invalid_format",
        ),
        (
            with("resources", json!({"memory": "2GB"})),
            "resources.memory",
            "invalid_format",
        ),
        (
            with("resources", json!({"gpu": 1.5})),
            "resources.gpu",
            "out_of_range",
        ),
        (with("timeout", json!("8d")), "timeout", "out_of_range"),
        (
            with("timeout", json!("forever")),
            "timeout",
            "invalid_format",
        ),
        (with("network", json!("host")), "network", "unsupported"),
        (
            with("env", json!({"AIRLOCK_TOKEN": "x"})),
            "env.AIRLOCK_TOKEN",
            "reserved",
        ),
        (
            with("env", json!({"BAD-NAME": "x"})),
            "env.BAD-NAME",
            "invalid_format",
        ),
        (
            with("labels", json!({"team": "Not Valid!"})),
            "labels.team",
            "invalid_format",
        ),
        (
            with("priority", json!("urgent")),
            "priority",
            "invalid_format",
        ),
        (with("surprise", json!(true)), "surprise", "unknown_field"),
    ];
    for (spec, path, code) in cases {
        let reply = api.submit(&spec).await;
        assert_eq!(reply.status, 422, "{path}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed");
        let errors = reply.body["details"]["errors"].as_array().expect("errors");
        assert!(
            errors
                .iter()
                .any(|e| e["path"] == path && e["code"] == code),
            "{path} {code}: {}",
            reply.body
        );
    }
    let everything_wrong = api
        .submit(&json!({"name": 1, "tasks": "no", "colour": "red"}))
        .await;
    assert_eq!(everything_wrong.status, 422);
    let paths: Vec<&str> = everything_wrong.body["details"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    for expected in ["colour", "name", "image", "command", "tasks"] {
        assert!(
            paths.contains(&expected),
            "all problems reported at once: {paths:?}"
        );
    }

    let yaml_error = api
        .post_body(
            "/api/v1/evaluations",
            "application/yaml",
            "name: ok\nimage: img\ncommand: [true\n",
        )
        .await;
    assert_eq!(
        (yaml_error.status, yaml_error.body["code"].as_str()),
        (400, Some("malformed_request"))
    );
    let json_error = api
        .post_body("/api/v1/evaluations", "application/json", "{\"name\": ")
        .await;
    assert_eq!(
        (json_error.status, json_error.body["code"].as_str()),
        (400, Some("malformed_request"))
    );
    let wrong_type = api
        .post_body("/api/v1/evaluations", "text/plain", "name: x")
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.body["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let huge = with("name", json!("x".repeat(100_000)));
    let too_large = api
        .post_body("/api/v1/evaluations", "application/json", huge.to_string())
        .await;
    assert_eq!(
        (too_large.status, too_large.body["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    let pool = stack.db.connect().await;
    for table in ["evaluations", "runs", "outbox"] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .expect("count");
        assert_eq!(count, 0, "nothing refused was written to {table}");
    }
    let listed = api.get("/api/v1/evaluations").await;
    assert_eq!(listed.body["items"], json!([]));

    let yaml = api
        .post_body(
            "/api/v1/evaluations",
            "application/yaml",
            "name: from yaml\nimage: img\ncommand: [sh, -c, 'exit 0']\ntasks:\n  - id: a\n    input: {n: 1}\n",
        )
        .await;
    assert_eq!(yaml.status, 201, "{}", yaml.body);
    assert_eq!(yaml.body["spec"]["tasks"][0]["input"]["n"], 1);
    assert!(yaml.headers.get("location").is_some());
    let zero_limit = api.get("/api/v1/evaluations?limit=0").await;
    assert_eq!(zero_limit.status, 400);
    assert_eq!(zero_limit.body["code"], "malformed_request");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_teams_and_roles_decide_who_sees_and_does_what() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.api(&stack.token("alice", "red", "researcher").await);
    let viewer = stack.api(&stack.token("victor", "red", "viewer").await);
    let other_team = stack.api(&stack.token("bob", "blue", "admin").await);

    let id = alice
        .submit_ok(&json!({"name": "red work", "image": "img", "command": ["true"]}))
        .await;
    let evaluation = alice.wait_finished(&id, Duration::from_secs(60)).await;
    let run_id = evaluation["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();

    for bad in [
        stack.api(""),
        stack.api("alk_not-a-real-token"),
        stack.api(&format!("alk_{}", "A".repeat(43))),
    ] {
        let reply = bad.get("/api/v1/evaluations").await;
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (401, Some("unauthorized"))
        );
        assert_eq!(
            reply
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or("")),
            Some("Bearer")
        );
    }

    // The same team's viewer reads but may not act.
    assert_eq!(
        viewer
            .get(&format!("/api/v1/evaluations/{id}"))
            .await
            .status,
        200
    );
    let submit = viewer
        .submit(&json!({"name": "x", "image": "img", "command": ["true"]}))
        .await;
    assert_eq!(
        (submit.status, submit.body["code"].as_str()),
        (403, Some("forbidden"))
    );
    let cancel = viewer
        .post(&format!("/api/v1/evaluations/{id}/cancel"))
        .await;
    assert_eq!(
        (cancel.status, cancel.body["code"].as_str()),
        (403, Some("forbidden"))
    );

    // Another team cannot tell the evaluation exists.
    for path in [
        format!("/api/v1/evaluations/{id}"),
        format!("/api/v1/runs/{run_id}"),
        format!("/api/v1/runs/{run_id}/events"),
    ] {
        let reply = other_team.get(&path).await;
        assert_eq!(
            (reply.status, reply.body["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let cancel = other_team
        .post(&format!("/api/v1/evaluations/{id}/cancel"))
        .await;
    assert_eq!(cancel.status, 404);
    assert_eq!(
        other_team.get("/api/v1/evaluations").await.body["items"],
        json!([])
    );
    let ws = other_team.try_stream(&id, None).await.map(|_| ());
    assert_eq!(
        ws,
        Err(404),
        "the stream of another team's evaluation is not found"
    );
    assert!(alice.try_stream(&id, None).await.is_ok());
    assert_eq!(
        alice.get("/api/v1/evaluations/not-a-uuid").await.status,
        404
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_pages_and_filters_and_the_local_runtime_refuses_gpus() {
    let stack = Stack::start(StackOptions::default()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let mut ids = Vec::new();
    for (i, suite) in ["a", "b", "a"].iter().enumerate() {
        ids.push(
            api.submit_ok(&json!({"name": format!("e{i}"), "image": "img", "command": ["true"], "labels": {"suite": suite}}))
                .await,
        );
    }
    let gpu = api
        .submit_ok(&json!({"name": "wants a gpu", "image": "img", "command": ["true"], "resources": {"gpu": 1}}))
        .await;
    let refused = api.wait_finished(&gpu, Duration::from_secs(60)).await;
    assert_eq!(refused["runs"][0]["state"], "error");
    assert!(
        refused["runs"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no GPUs"),
        "{}",
        refused["runs"][0]
    );
    for id in &ids {
        api.wait_finished(id, Duration::from_secs(60)).await;
    }

    let first = api.get("/api/v1/evaluations?limit=2").await;
    let names: Vec<&str> = first.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["wants a gpu", "e2"], "newest first");
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = api
        .get(&format!("/api/v1/evaluations?limit=2&cursor={cursor}"))
        .await;
    let names: Vec<&str> = second.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["e1", "e0"]);
    assert!(second.body["next_cursor"].is_null());

    let suite_a = api.get("/api/v1/evaluations?label=suite=a").await;
    assert_eq!(suite_a.body["items"].as_array().expect("items").len(), 2);
    let failed = api.get("/api/v1/evaluations?status=failed").await;
    let names: Vec<&str> = failed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["wants a gpu"]);
    assert_eq!(
        api.get("/api/v1/evaluations?status=bogus").await.status,
        400
    );
    assert_eq!(
        api.get("/api/v1/evaluations?cursor=garbage").await.status,
        400
    );

    let openapi = api.get("/api/v1/openapi.json").await;
    assert_eq!(openapi.body["openapi"], "3.1.0");
    for path in [
        "/api/v1/evaluations",
        "/api/v1/evaluations/{id}/stream",
        "/api/v1/runs/{id}/events",
    ] {
        assert!(openapi.body["paths"][path].is_object(), "{path} documented");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_over_the_rate_limit_gets_429_with_retry_after() {
    let stack = Stack::start(StackOptions {
        env: vec![
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_PER_MINUTE".into(),
                "1".into(),
            ),
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_BURST".into(),
                "3".into(),
            ),
        ],
        ..StackOptions::default()
    })
    .await;
    let busy = stack.api(&stack.token("busy", "red", "researcher").await);
    for _ in 0..3 {
        assert_eq!(busy.get("/api/v1/evaluations").await.status, 200);
    }
    let limited = busy.get("/api/v1/evaluations").await;
    assert_eq!(
        (limited.status, limited.body["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let other = stack.api(&stack.token("calm", "red", "researcher").await);
    assert_eq!(
        other.get("/api/v1/evaluations").await.status,
        200,
        "limits are per user"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_is_served_with_a_fallback_for_deep_links_but_never_for_the_api() {
    let ui = std::env::temp_dir().join(format!("airlock-ui-{}", std::process::id()));
    std::fs::create_dir_all(ui.join("assets")).expect("ui dir");
    std::fs::write(
        ui.join("index.html"),
        "<!doctype html><title>Airlock</title>",
    )
    .expect("index");
    std::fs::write(ui.join("assets/app.js"), "console.log('airlock')").expect("asset");
    let stack = Stack::start(StackOptions {
        env: vec![(
            Service::Gateway,
            "AIRLOCK_STATIC_DIR".into(),
            ui.display().to_string(),
        )],
        ..StackOptions::default()
    })
    .await;
    let base = stack.url(Service::Gateway);
    let text = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let reply = reqwest::get(&url).await.expect("GET");
            (reply.status().as_u16(), reply.text().await.expect("body"))
        }
    };
    let cache_control = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let reply = reqwest::get(&url).await.expect("GET");
            let policy = reply
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (reply.status().as_u16(), policy)
        }
    };
    assert_eq!(
        text("/").await,
        (200, "<!doctype html><title>Airlock</title>".to_owned())
    );
    assert_eq!(
        text("/evaluations/some-id/runs").await.1,
        "<!doctype html><title>Airlock</title>",
        "deep link"
    );
    assert_eq!(
        text("/assets/app.js").await,
        (200, "console.log('airlock')".to_owned())
    );
    assert_eq!(
        cache_control("/assets/app.js").await,
        (200, "public, max-age=31536000, immutable".to_owned()),
        "hashed assets are cached for a year"
    );
    assert_eq!(
        cache_control("/").await,
        (200, "no-cache".to_owned()),
        "index.html is revalidated so a release shows at once"
    );
    assert_eq!(
        cache_control("/evaluations/some-id").await,
        (200, "no-cache".to_owned())
    );
    let (status, body) = text("/assets/app-missing.js").await;
    assert_eq!(
        (status, body.contains("<title>")),
        (404, false),
        "a missing asset is a 404, never index.html"
    );
    assert_eq!(cache_control("/assets/app-missing.js").await.1, "no-cache");
    let (status, body) = text("/api/v1/no-such-thing").await;
    assert_eq!(status, 404);
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(body["code"], "not_found");
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&ui);
}

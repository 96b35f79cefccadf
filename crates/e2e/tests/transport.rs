//! Connections to PostgreSQL can be encrypted, as managed databases require: with
//! `?sslmode=require` in `AIRLOCK_DATABASE_URL`, every service talks TLS and an
//! evaluation runs as usual.

use airlock_test_support::{Stack, StackOptions};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn services_reach_postgres_over_tls_when_the_url_asks() {
    let stack = Stack::start(StackOptions {
        database_params: Some("sslmode=require".into()),
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let id = api
        .submit_ok(&json!({"name": "over tls", "image": "img", "command": ["true"]}))
        .await;
    let finished = api.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(finished["status"], "succeeded");

    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
    )
    .fetch_one(&stack.db.connect().await)
    .await
    .expect("connection statistics");
    assert!(
        encrypted >= 3,
        "every service holds an encrypted connection ({encrypted})"
    );
    assert_eq!(plain, 0, "no service connected in the clear");
    stack.stop().await;
}

//! Keeping the database in shape, against a real PostgreSQL: services and the `migrate`
//! command refuse a schema a newer build left behind, services refuse one that is not
//! migrated yet, and housekeeping removes what has expired.

use airlock_db::Db;
use airlock_test_support::TestDatabase;

#[tokio::test]
async fn services_and_migrate_refuse_a_schema_of_another_build() {
    let database = TestDatabase::create().await;
    let db = Db::connect_lazy(&database.url, 2).expect("pool");
    let unmigrated = db
        .require_current_schema("orchestrator")
        .await
        .expect_err("a service refuses an unmigrated database");
    assert!(unmigrated.to_string().contains("older"), "{unmigrated}");
    db.migrate().await.expect("first migration");
    db.require_current_schema("orchestrator")
        .await
        .expect("the current schema is accepted");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'from a newer build', true, '\\x00', 0)",
    )
    .execute(db.pool())
    .await
    .expect("record a newer migration");

    db.pool().close().await;

    // Each as its own process would: a refused run leaves its lock with its connection,
    // which a process exiting closes.
    let command = Db::connect_lazy(&database.url, 1).expect("pool");
    assert!(
        command.migrate().await.is_err(),
        "the migrate command must not run over an unknown newer migration"
    );
    command.pool().close().await;
    let db = Db::connect_lazy(&database.url, 2).expect("pool");
    let newer = db
        .require_current_schema("result-processor")
        .await
        .expect_err("a service refuses a newer schema");
    let message = newer.to_string();
    assert!(
        message.contains("newer") && message.contains("99991231000000"),
        "the message names the unknown migration: {message}"
    );
    database.drop_database().await;
}

#[tokio::test]
async fn housekeeping_removes_ended_sessions_stale_logins_and_old_audit_entries() {
    use airlock_core::Role;
    use airlock_db::audit::AuditRecord;
    use airlock_db::sessions::{LoginRequest, Purged};

    let database = TestDatabase::create().await;
    let db = airlock_db::GatewayDb::new(Db::connect_lazy(&database.url, 2).expect("pool"));
    db.migrate().await.expect("migrate");
    let alice = db
        .upsert_user("alice", "red", Role::Admin)
        .await
        .expect("user");
    let in_a_day = chrono::Utc::now() + chrono::Duration::days(1);
    for id in [b"live".as_slice(), b"idle", b"over"] {
        db.create_session(id, alice.user_id, "csrf", in_a_day, None)
            .await
            .expect("session");
    }
    let login = LoginRequest {
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        return_to: "/".into(),
    };
    db.insert_login_request(b"fresh", &login)
        .await
        .expect("login");
    db.insert_login_request(b"stale", &login)
        .await
        .expect("login");
    let record = |action| AuditRecord {
        team_id: Some(alice.team_id),
        actor_id: Some(alice.user_id),
        actor_name: Some("alice".into()),
        action,
        object_type: "session",
        object_id: None,
        source_address: None,
        success: true,
        detail: serde_json::json!({}),
    };
    db.audit(&record("login")).await.expect("audit");
    db.audit(&record("logout")).await.expect("audit");
    for statement in [
        "UPDATE sessions SET last_seen_at = now() - interval '2 hours' WHERE id_hash = 'idle'",
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id_hash = 'over'",
        "UPDATE login_requests SET created_at = now() - interval '2 hours' WHERE state_hash = 'stale'",
        "UPDATE audit_log SET at = now() - interval '400 days' WHERE action = 'login'",
    ] {
        sqlx::query(statement)
            .execute(db.pool())
            .await
            .expect(statement);
    }

    let purged = db.purge(3600, 365).await.expect("purge");
    assert_eq!(
        purged,
        Purged {
            sessions: 2,
            login_requests: 1,
            audit_entries: 1,
        }
    );
    assert!(db.session(b"live", 3600).await.expect("read").is_some());
    let left: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log")
        .fetch_all(db.pool())
        .await
        .expect("audit");
    assert_eq!(left, vec!["logout".to_owned()]);
    assert_eq!(db.purge(3600, 0).await.expect("purge"), Purged::default());
    database.drop_database().await;
}

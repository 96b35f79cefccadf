//! Migrations against a real PostgreSQL: a service may start on a schema a newer build
//! left behind (a rollback), while the `migrate` command refuses to touch it.

use airlock_db::Db;
use airlock_test_support::TestDatabase;

#[tokio::test]
async fn services_start_on_a_newer_schema_but_migrate_refuses_it() {
    let database = TestDatabase::create().await;
    let db = Db::connect_lazy(&database.url, 2).expect("pool");
    db.migrate().await.expect("first migration");
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
    db.migrate_for_serving()
        .await
        .expect("a rolled-back service still starts");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(db.pool())
        .await
        .expect("the schema is usable");
    assert_eq!(users, 0);
    database.drop_database().await;
}

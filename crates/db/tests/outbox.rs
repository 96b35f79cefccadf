//! The outbox against a real PostgreSQL: a message keeps the trace context it was
//! written with until the relay claims it.

use airlock_core::{EvalSpec, EvaluationId, Role, RunId, TraceContext};
use airlock_db::evaluations::{NewEvaluation, NewRun};
use airlock_db::{Db, OutboxMessage};
use airlock_test_support::TestDatabase;
use chrono::Utc;

#[tokio::test]
async fn a_claimed_message_carries_its_trace_context() {
    let database = TestDatabase::create().await;
    let db = Db::connect_lazy(&database.url, 4).expect("pool");
    db.migrate().await.expect("migrate");
    let owner = db
        .upsert_user("alice", "red", Role::Researcher)
        .await
        .expect("user");
    let spec =
        EvalSpec::from_value(&serde_json::json!({"name": "n", "image": "i", "command": ["true"]}))
            .expect("spec");
    let trace = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .expect("traceparent");
    let payload = serde_json::json!({"hello": "world"});
    db.insert_evaluation(NewEvaluation {
        audit: None,
        id: EvaluationId::new(),
        team_id: owner.team_id,
        owner_id: owner.user_id,
        spec: &spec,
        created_at: Utc::now(),
        runs: &[NewRun {
            id: RunId::new(),
            task_index: 0,
            task_id: "default".into(),
            epoch: 1,
        }],
        outbox: &[
            OutboxMessage::new("airlock.runs", "run", 1, payload.clone()).with_trace(trace),
            OutboxMessage::new("airlock.runs", "run", 1, payload.clone()),
        ],
    })
    .await
    .expect("insert");

    let batch = db.claim_outbox(10).await.expect("claim");
    let traces: Vec<Option<TraceContext>> = batch.messages.iter().map(|m| m.trace).collect();
    assert_eq!(traces, [Some(trace), None]);
    assert!(batch.messages.iter().all(|m| m.payload == payload));
    batch.complete(&[]).await.expect("release");
    database.drop_database().await;
}

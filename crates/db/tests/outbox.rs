//! The outbox against a real PostgreSQL: a message keeps the trace context it was
//! written with until the relay claims it.

mod common;

use airlock_core::TraceContext;
use airlock_db::OutboxMessage;

#[tokio::test]
async fn a_claimed_message_carries_its_trace_context() {
    let trace = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .expect("traceparent");
    let payload = serde_json::json!({"hello": "world"});
    let f = common::fixture(&[
        OutboxMessage::new("airlock.runs", "run", 1, payload.clone()).with_trace(trace),
        OutboxMessage::new("airlock.runs", "run", 1, payload.clone()),
    ])
    .await;

    let batch = f.gateway.claim_outbox(10).await.expect("claim");
    let traces: Vec<Option<TraceContext>> = batch.messages.iter().map(|m| m.trace).collect();
    assert_eq!(traces, [Some(trace), None]);
    assert!(batch.messages.iter().all(|m| m.payload == payload));
    batch.complete(&[]).await.expect("release");
    f.database.drop_database().await;
}

//! Run requests a test sends itself, the way a redelivery or a foreign publisher would:
//! through the outbox, so the gateway's relay publishes them to `airlock.runs`.

use airlock_core::messages::{RunRequest, RunRequested};
use airlock_core::spec::{NetworkPolicy, Priority, Resources};
use airlock_core::{EvaluationId, RunId, TeamId};
use serde_json::Value;

use crate::Stack;

/// A second copy of the request that started the first run of `evaluation` (as read
/// from the API), which ran `command`: what RabbitMQ would redeliver.
pub fn redelivery_of_first_run(evaluation: &Value, command: &[&str]) -> RunRequest {
    let field = |name: &str| evaluation[name].as_str().expect(name).to_owned();
    RunRequest::V1(RunRequested {
        run_id: RunId::parse(evaluation["runs"][0]["id"].as_str().expect("run id"))
            .expect("run id"),
        evaluation_id: EvaluationId::parse(&field("id")).expect("evaluation id"),
        team_id: TeamId::parse(&field("team_id")).expect("team id"),
        attempt: 1,
        task_id: "default".into(),
        epoch: 1,
        priority: Priority::Normal,
        submitted_at: field("created_at").parse().expect("timestamp"),
        image: "img".into(),
        command: command.iter().map(|part| (*part).to_owned()).collect(),
        env: Default::default(),
        resources: Resources::default(),
        timeout_secs: 3600,
        network: NetworkPolicy::None,
        input: Value::Null,
        not_before: None,
    })
}

impl Stack {
    /// Publishes `payload` to the run requests exchange through the outbox.
    pub async fn publish_run_request(&self, payload: &Value) {
        let pool = self.db.connect().await;
        sqlx::query(
            "INSERT INTO outbox (exchange, routing_key, priority, payload)
             VALUES ('airlock.runs', 'run', 1, $1)",
        )
        .bind(payload)
        .execute(&pool)
        .await
        .expect("insert into the outbox");
        pool.close().await;
    }
}

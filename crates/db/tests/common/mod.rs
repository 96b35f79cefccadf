//! What the database tests share: a migrated database holding one evaluation of one run.
// Each test file uses part of this.
#![allow(dead_code)]

use airlock_core::{EvalSpec, EvaluationId, Role, RunId};
use airlock_db::evaluations::{NewEvaluation, NewRun};
use airlock_db::{Db, GatewayDb, OrchestratorDb, OutboxMessage, ResultsDb};
use airlock_test_support::TestDatabase;
use chrono::Utc;

pub struct Fixture {
    pub db: Db,
    /// The service facades over `db`.
    pub gateway: GatewayDb,
    pub orchestrator: OrchestratorDb,
    pub results: ResultsDb,
    pub database: TestDatabase,
    pub evaluation: EvaluationId,
    pub run: RunId,
}

/// A fresh, migrated database with alice (researcher in red) and her evaluation of one
/// run, submitted with `outbox`.
pub async fn fixture(outbox: &[OutboxMessage]) -> Fixture {
    let database = TestDatabase::create().await;
    let db = Db::connect_lazy(&database.url, 4).expect("pool");
    db.migrate().await.expect("migrate");
    let gateway = GatewayDb::new(db.clone());
    let owner = gateway
        .upsert_user("alice", "red", Role::Researcher)
        .await
        .expect("user");
    let spec =
        EvalSpec::from_value(&serde_json::json!({"name": "n", "image": "i", "command": ["true"]}))
            .expect("spec");
    let evaluation = EvaluationId::new();
    let run = RunId::new();
    gateway
        .insert_evaluation(NewEvaluation {
            audit: None,
            id: evaluation,
            team_id: owner.team_id,
            owner_id: owner.user_id,
            spec: &spec,
            created_at: Utc::now(),
            runs: &[NewRun {
                id: run,
                task_index: 0,
                task_id: "default".into(),
                epoch: 1,
            }],
            outbox,
        })
        .await
        .expect("insert");
    Fixture {
        orchestrator: OrchestratorDb::new(db.clone()),
        results: ResultsDb::new(db.clone()),
        gateway,
        db,
        database,
        evaluation,
        run,
    }
}

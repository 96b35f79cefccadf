//! Replicas against a real PostgreSQL: claims decide who starts an attempt and hold the
//! global quotas under concurrency, a lost replica's claims move to exactly one taker,
//! leases expire into "lost" once, and a leader role passes on when its holder's lease
//! ends.

mod common;

use airlock_core::replica::{GlobalLimits, Refusal, ReplicaService};
use airlock_core::{EvalSpec, EvaluationId, Role, RunId, TeamId};
use airlock_db::evaluations::{NewEvaluation, NewRun};
use airlock_db::{ClaimOutcome, ClaimRequest, Db, GatewayDb, ReplicaEnd, ReplicaInfo};
use chrono::Utc;
use std::collections::HashSet;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

/// `n` runs of a new evaluation of alice's team (red).
async fn runs(db: &GatewayDb, n: usize) -> (TeamId, Vec<RunId>) {
    let owner = db
        .upsert_user("alice", "red", Role::Researcher)
        .await
        .expect("user");
    let spec =
        EvalSpec::from_value(&serde_json::json!({"name": "n", "image": "i", "command": ["true"]}))
            .expect("spec");
    let runs: Vec<NewRun> = (0..n)
        .map(|i| NewRun {
            id: RunId::new(),
            task_index: 0,
            task_id: "default".into(),
            epoch: u32::try_from(i + 1).expect("epoch"),
        })
        .collect();
    db.insert_evaluation(NewEvaluation {
        audit: None,
        id: EvaluationId::new(),
        team_id: owner.team_id,
        owner_id: owner.user_id,
        spec: &spec,
        created_at: Utc::now(),
        runs: &runs,
        outbox: &[],
    })
    .await
    .expect("insert");
    (owner.team_id, runs.iter().map(|r| r.id).collect())
}

fn orchestrator(id: &str) -> ReplicaInfo {
    ReplicaInfo {
        id: id.into(),
        service: ReplicaService::Orchestrator,
        host: "test".into(),
        runtime: Some("local".into()),
        capacity: Some(4),
    }
}

/// Ends a lease now, as time passing would.
async fn expire(db: &Db, table_sql: &'static str) {
    sqlx::query(table_sql)
        .execute(db.pool())
        .await
        .expect("expire");
}

#[tokio::test]
async fn two_replicas_racing_for_one_attempt_start_it_once() {
    let fixture = common::fixture(&[]).await;
    let db = &fixture.orchestrator;
    let (team, runs) = runs(&fixture.gateway, 1).await;
    let run = runs[0];
    let claim = |replica: &'static str| {
        let db = db.clone();
        async move {
            db.claim_attempt(ClaimRequest {
                run_id: run,
                attempt: 1,
                team_id: team,
                replica_id: replica,
            })
            .await
            .expect("claim")
        }
    };
    let (a, b) = tokio::join!(claim("a"), claim("b"));
    let outcomes = [a, b];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == ClaimOutcome::Claimed)
            .count(),
        1,
        "exactly one replica gets the attempt: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, ClaimOutcome::Taken { .. }))
    );
    // A redelivery to the same replica, and to the other one after the attempt ended.
    let winner = if outcomes[0] == ClaimOutcome::Claimed {
        "a"
    } else {
        "b"
    };
    assert_eq!(claim(winner).await, ClaimOutcome::AlreadyMine);
    db.release_claim(run, 1, winner).await.expect("release");
    assert!(
        matches!(claim("a").await, ClaimOutcome::Taken { .. }),
        "an ended attempt never starts again"
    );
    fixture.database.drop_database().await;
}

#[tokio::test]
async fn a_team_quota_holds_under_concurrent_claims_from_many_replicas() {
    let fixture = common::fixture(&[]).await;
    let db = &fixture.orchestrator;
    let (team, runs) = runs(&fixture.gateway, 24).await;
    let limits = GlobalLimits {
        per_team: Some(4),
        platform: None,
    };
    assert_eq!(db.set_global_limits(limits, "r0").await.expect("set"), None);
    assert_eq!(db.global_limits().await.expect("read"), limits);
    let replicas = ["r0", "r1", "r2"];
    let claims = runs.iter().enumerate().map(|(i, run)| {
        let db = db.clone();
        let replica = replicas[i % replicas.len()];
        let run = *run;
        async move {
            let outcome = db
                .claim_attempt(ClaimRequest {
                    run_id: run,
                    attempt: 1,
                    team_id: team,
                    replica_id: replica,
                })
                .await
                .expect("claim");
            (run, replica, outcome)
        }
    });
    let outcomes = futures_util::future::join_all(claims).await;
    let granted: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, o)| *o == ClaimOutcome::Claimed)
        .collect();
    assert_eq!(granted.len(), 4, "the quota of 4 holds: {outcomes:?}");
    assert!(outcomes.iter().all(|(_, _, o)| *o == ClaimOutcome::Claimed
        || *o
            == ClaimOutcome::Refused(Refusal::TeamQuota {
                running: 4,
                limit: 4
            })));
    let (run, replica, _) = granted[0];
    db.release_claim(*run, 1, replica).await.expect("release");
    let refused = outcomes
        .iter()
        .find(|(_, _, o)| *o != ClaimOutcome::Claimed)
        .expect("a refused run");
    let again = db
        .claim_attempt(ClaimRequest {
            run_id: refused.0,
            attempt: 1,
            team_id: team,
            replica_id: "r0",
        })
        .await
        .expect("claim");
    assert_eq!(
        again,
        ClaimOutcome::Claimed,
        "a released slot is free for any replica"
    );
    let platform = GlobalLimits {
        per_team: None,
        platform: Some(4),
    };
    let replaced = db.set_global_limits(platform, "r1").await.expect("set");
    assert_eq!(
        replaced,
        Some(limits),
        "the newest replica's limits replace the others'"
    );
    let over = db
        .claim_attempt(ClaimRequest {
            run_id: outcomes.last().expect("run").0,
            attempt: 2,
            team_id: TeamId::new(),
            replica_id: "r1",
        })
        .await
        .expect("claim");
    assert_eq!(
        over,
        ClaimOutcome::Refused(Refusal::PlatformLimit {
            running: 4,
            limit: 4
        })
    );
    fixture.database.drop_database().await;
}

#[tokio::test]
async fn a_lost_replicas_claims_move_to_exactly_one_survivor_each() {
    let fixture = common::fixture(&[]).await;
    let db = &fixture.orchestrator;
    let (team, runs) = runs(&fixture.gateway, 10).await;
    for id in ["dead", "s1", "s2"] {
        db.register_replica(&orchestrator(id), LEASE)
            .await
            .expect("register");
    }
    for run in &runs {
        let claim = ClaimRequest {
            run_id: *run,
            attempt: 1,
            team_id: team,
            replica_id: "dead",
        };
        assert_eq!(
            db.claim_attempt(claim).await.expect("claim"),
            ClaimOutcome::Claimed
        );
    }
    assert!(
        db.mark_lost_replicas(ReplicaService::Orchestrator)
            .await
            .expect("sweep")
            .is_empty(),
        "a live lease is not lost"
    );
    expire(
        db,
        "UPDATE replicas SET lease_expires_at = now() - interval '1 second' WHERE id = 'dead'",
    )
    .await;
    assert_eq!(
        db.mark_lost_replicas(ReplicaService::Orchestrator)
            .await
            .expect("sweep"),
        vec!["dead".to_owned()]
    );
    assert!(
        db.mark_lost_replicas(ReplicaService::Orchestrator)
            .await
            .expect("sweep")
            .is_empty(),
        "lost once"
    );
    assert!(
        !db.renew_replica("dead", LEASE, &[]).await.expect("renew"),
        "a lost replica cannot renew"
    );
    assert_eq!(
        db.lost_replicas_holding_claims().await.expect("holders"),
        vec!["dead".to_owned()]
    );

    let (first, second) = tokio::join!(
        db.adopt_claims("dead", "s1", 6),
        db.adopt_claims("dead", "s2", 6)
    );
    let (first, second) = (first.expect("s1 adopts"), second.expect("s2 adopts"));
    let taken: HashSet<RunId> = first
        .iter()
        .chain(second.iter())
        .map(|c| c.run_id)
        .collect();
    assert_eq!(
        first.len() + second.len(),
        10,
        "every claim taken once: {first:?} {second:?}"
    );
    assert_eq!(taken.len(), 10);
    assert!(
        db.lost_replicas_holding_claims()
            .await
            .expect("holders")
            .is_empty()
    );
    let records = db.replicas(Duration::from_secs(3600)).await.expect("list");
    let dead = records
        .iter()
        .find(|r| r.info.id == "dead")
        .expect("listed");
    assert!(matches!(dead.ended, Some((ReplicaEnd::Lost, _))));
    assert_eq!(dead.running, 0);
    let s1 = records.iter().find(|r| r.info.id == "s1").expect("listed");
    assert_eq!(s1.running as usize, first.len());
    fixture.database.drop_database().await;
}

#[tokio::test]
async fn a_leader_role_passes_to_another_replica_when_its_holders_lease_ends() {
    let fixture = common::fixture(&[]).await;
    let db = &fixture.db;
    assert!(
        db.hold_leader_lease("reaper", "a", LEASE)
            .await
            .expect("a takes")
    );
    assert!(
        !db.hold_leader_lease("reaper", "b", LEASE)
            .await
            .expect("b waits")
    );
    assert!(
        db.hold_leader_lease("reaper", "a", LEASE)
            .await
            .expect("a renews")
    );
    assert_eq!(
        db.leader("reaper").await.expect("leader").as_deref(),
        Some("a")
    );
    expire(
        db,
        "UPDATE leader_leases SET expires_at = now() - interval '1 second'",
    )
    .await;
    assert_eq!(db.leader("reaper").await.expect("leader"), None);
    assert!(
        db.hold_leader_lease("reaper", "b", LEASE)
            .await
            .expect("b takes over")
    );
    assert!(
        !db.hold_leader_lease("reaper", "a", LEASE)
            .await
            .expect("a is out")
    );
    db.register_replica(&orchestrator("b"), LEASE)
        .await
        .expect("register");
    db.withdraw_replica("b").await.expect("withdraw");
    assert_eq!(
        db.leader("reaper").await.expect("leader"),
        None,
        "withdrawing gives the role up"
    );
    fixture.database.drop_database().await;
}

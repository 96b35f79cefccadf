//! Several orchestrator replicas: a request delivered to two replicas starts one
//! sandbox, a singleton role moves to another replica within the lease when its holder
//! dies, the system view lists every replica with its roles and lost ones, a replica of
//! another runtime refuses to start, and the newest replica's quota holds for all.

use airlock_test_support::{Service, Stack, StackOptions, eventually, redelivery_of_first_run};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);
const LEASE_SECS: u64 = 3;

fn two_orchestrators() -> StackOptions {
    StackOptions {
        replicas: vec![(Service::Orchestrator, 2)],
        env: vec![(
            Service::Orchestrator,
            "AIRLOCK_REPLICA_LEASE_SECS".into(),
            LEASE_SECS.to_string(),
        )],
        ..StackOptions::default()
    }
}

fn orchestrators(system: &Value) -> Vec<Value> {
    system["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .filter(|r| r["service"] == "orchestrator")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_delivered_to_two_replicas_starts_one_sandbox() {
    let stack = Stack::start(two_orchestrators()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let command = ["sh", "-c", "echo started; sleep 2; echo done"];
    let id = api
        .submit_ok(&json!({"name": "once", "image": "img", "command": command}))
        .await;
    let evaluation = api.evaluation(&id).await;
    let run_id = evaluation["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    let duplicate = json!(redelivery_of_first_run(&evaluation, &command));
    // Copies race the original to both replicas (competing consumers).
    for _ in 0..4 {
        stack.publish_run_request(&duplicate).await;
    }
    let finished = api.wait_finished(&id, LIMIT).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let events = api.run_events(&run_id).await;
    let starting = events
        .iter()
        .filter(|e| e["type"] == "status" && e["state"] == "starting")
        .count();
    assert_eq!(starting, 1, "one sandbox started: {events:?}");
    assert_eq!(
        events.iter().filter(|e| e["message"] == "started").count(),
        1
    );
    let pool = stack.db.connect().await;
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM run_claims")
        .fetch_one(&pool)
        .await
        .expect("claims");
    assert_eq!(claims, 1, "one claim for one attempt");
    pool.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_singleton_moves_to_another_replica_within_the_lease_when_its_holder_dies() {
    let mut stack = Stack::start(two_orchestrators()).await;
    let api = stack.api(&stack.token("alice", "red", "admin").await);
    let holder = eventually("a replica to hold the cleanup role", LIMIT, || async {
        let system = api.get("/api/v1/system").await.body;
        orchestrators(&system).into_iter().find(|r| {
            r["roles"]
                .as_array()
                .is_some_and(|roles| roles.iter().any(|x| x == "replica-cleanup"))
        })
    })
    .await;
    let holder_id = holder["id"].as_str().expect("id").to_owned();
    let index = stack.replica_named(Service::Orchestrator, 2, &holder_id);
    let killed = Instant::now();
    stack.kill_replica(Service::Orchestrator, index).await;
    let (successor, system) = eventually("another replica to take the role", LIMIT, || async {
        let system = api.get("/api/v1/system").await.body;
        let successor = orchestrators(&system).into_iter().find(|r| {
            r["state"] == "live"
                && r["id"] != holder_id.as_str()
                && r["roles"]
                    .as_array()
                    .is_some_and(|roles| roles.iter().any(|x| x == "replica-cleanup"))
        })?;
        Some((successor, system))
    })
    .await;
    let took = killed.elapsed();
    // The lease runs out, and the successor tries every third of it (plus room for a
    // busy machine: the point is "within the lease", not "within minutes").
    let bound = Duration::from_secs(LEASE_SECS)
        + Duration::from_secs(LEASE_SECS) / 3
        + Duration::from_secs(4);
    assert!(took <= bound, "taken over in {took:?}, within {bound:?}");
    assert_ne!(successor["id"], holder["id"]);
    let dead = orchestrators(&system)
        .into_iter()
        .find(|r| r["id"] == holder_id.as_str())
        .expect("the dead replica is still listed");
    assert_eq!(dead["state"], "lost", "{dead}");
    assert_eq!(dead["roles"], json!([]));
    assert_eq!(successor["runtime"], "local");
    assert_eq!(
        system["capacity"], successor["capacity"],
        "capacity counts live replicas only"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_runtime_is_refused_and_the_newest_replicas_quota_holds_for_all() {
    let mut stack = Stack::start(StackOptions {
        team_quota: Some(4),
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "viewer").await);
    assert_eq!(
        api.get("/api/v1/system").await.body["team_max_concurrent_runs"],
        4
    );
    let other_runtime = stack
        .run_until_exit(Service::Orchestrator, &[("AIRLOCK_RUNTIME", "kubernetes")])
        .await;
    assert!(!other_runtime.status.success());
    let message = String::from_utf8_lossy(&other_runtime.stderr);
    assert!(message.contains("must share the runtime"), "{message}");

    // A rolling update to a new quota: the new replica's value holds for every replica.
    stack.options.team_quota = Some(2);
    stack.start_replica(Service::Orchestrator, 1).await;
    stack.wait_replica_ready(Service::Orchestrator, 1).await;
    assert_eq!(
        api.get("/api/v1/system").await.body["team_max_concurrent_runs"],
        2
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_replica_that_wakes_after_its_runs_were_taken_over_exits_and_touches_nothing() {
    let mut stack = Stack::start(two_orchestrators()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let id = api
        .submit_ok(&json!({"name": "taken over", "image": "img", "command": ["sh", "-c", "echo begin; sleep 4; echo finished"]}))
        .await;
    let run_id = api.evaluation(&id).await["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    api.wait_run_state(&run_id, "running", LIMIT).await;
    let holder = stack.claim_holder().await;
    let frozen = stack.replica_named(Service::Orchestrator, 2, &holder);
    stack.signal_replica(Service::Orchestrator, frozen, libc::SIGSTOP);
    eventually("the other replica to retry the run", LIMIT, || async {
        let run = api.get(&format!("/api/v1/runs/{run_id}")).await.body;
        (run["attempt"] == 2).then_some(())
    })
    .await;
    stack.signal_replica(Service::Orchestrator, frozen, libc::SIGCONT);
    let status = stack
        .wait_replica_exit(Service::Orchestrator, frozen, LIMIT)
        .await
        .expect("the woken replica exits");
    assert_eq!(status.code(), Some(75), "it exits as having lost its lease");
    assert!(
        stack
            .replica_log(Service::Orchestrator, frozen)
            .contains("lost its lease"),
        "it says why"
    );

    let finished = api.wait_finished(&id, LIMIT).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let events = api.run_events(&run_id).await;
    let ends: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "status" && e["state"] == "succeeded")
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["attempt"], 2, "only the new attempt's end counts");
    stack.stop().await;
}

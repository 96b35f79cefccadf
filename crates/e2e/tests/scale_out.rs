//! Every service as several replicas, with replicas killed and the broker restarted
//! mid-flight: 3 orchestrators, 2 result-processors and 2 gateways run an evaluation of
//! many chatty runs under a team quota of 4. One of each service is SIGKILLed and
//! RabbitMQ restarts while runs are in flight. Every run must end succeeded with its
//! events complete (seq 1..N, no gap, no repeat), the quota must hold at every moment as
//! the programs themselves saw it (their own start and end times), more than one
//! orchestrator must have started runs, and a WebSocket on the second gateway must have
//! seen the evaluation submitted through the first, live and in order.
//!
//! This binary holds one test: it restarts the RabbitMQ node every test shares, which
//! only a test running alone may do. `AIRLOCK_SCALE_OUT_RUNS` sets the number of runs
//! (default 300; scripts/bench.sh runs a larger one).

use airlock_test_support::{
    Api, Service, Stack, StackOptions, assert_contiguous, eventually, restart_rabbitmq,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const QUOTA: usize = 4;
const LINES: usize = 20;
const LIMIT: Duration = Duration::from_secs(900);

fn runs_wanted() -> usize {
    std::env::var("AIRLOCK_SCALE_OUT_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The command: says when it starts and ends (by its own clock), chats in between.
fn command() -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "echo \"start $(date +%s%N)\"; i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo \"line $i\"; done; \
             sleep 0.2; echo \"end $(date +%s%N)\""
        ),
    ]
}

/// How many programs ran at once at most: each attempt's interval is its own start and
/// end lines, or [start, killed_at] for an attempt whose orchestrator was killed.
fn most_at_once(all_events: &[Vec<Value>], killed_at: i128) -> usize {
    let mut edges: Vec<(i128, i32)> = Vec::new();
    for events in all_events {
        let mut by_attempt: HashMap<i64, (Option<i128>, Option<i128>)> = HashMap::new();
        for event in events.iter().filter(|e| e["type"] == "log") {
            let attempt = event["attempt"].as_i64().unwrap_or(0);
            let message = event["message"].as_str().unwrap_or("");
            let entry = by_attempt.entry(attempt).or_default();
            if let Some(ns) = message.strip_prefix("start ").and_then(|n| n.parse().ok()) {
                entry.0 = Some(ns);
            } else if let Some(ns) = message.strip_prefix("end ").and_then(|n| n.parse().ok()) {
                entry.1 = Some(ns);
            }
        }
        for (start, end) in by_attempt.into_values() {
            if let Some(start) = start {
                edges.push((start, 1));
                edges.push((end.unwrap_or(killed_at), -1));
            }
        }
    }
    // Ends before starts at the same instant.
    edges.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_killed_and_a_broker_restart_lose_nothing_and_break_no_quota() {
    let runs = runs_wanted();
    let epochs = 10;
    let tasks = runs.div_ceil(epochs);
    let mut stack = Stack::start(StackOptions {
        capacity: 4,
        team_quota: Some(QUOTA),
        replicas: vec![
            (Service::Orchestrator, 3),
            (Service::ResultProcessor, 2),
            (Service::Gateway, 2),
        ],
        env: vec![
            (
                Service::Orchestrator,
                "AIRLOCK_REPLICA_LEASE_SECS".into(),
                "3".into(),
            ),
            (
                Service::Orchestrator,
                "AIRLOCK_MAX_ATTEMPTS".into(),
                "5".into(),
            ),
            (
                Service::ResultProcessor,
                "AIRLOCK_REPLICA_LEASE_SECS".into(),
                "3".into(),
            ),
            // The test reads every run's events at once; the per-user rate limit is not
            // what it is about.
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_PER_MINUTE".into(),
                "600000".into(),
            ),
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_BURST".into(),
                "100000".into(),
            ),
        ],
        ..StackOptions::default()
    })
    .await;
    let token = stack.token("alice", "red", "researcher").await;
    let api = stack.api(&token);
    let task_list: Vec<Value> = (0..tasks).map(|i| json!({"id": format!("t{i}")})).collect();
    let id = api
        .submit_ok(&json!({
            "name": "scale out",
            "image": "img",
            "command": command(),
            "tasks": task_list,
            "epochs": epochs,
        }))
        .await;
    let total = tasks * epochs;

    // A browser on the second gateway follows the evaluation submitted through the first.
    let second = Api::new(&stack.replica_url(Service::Gateway, 1), &token);
    let mut stream = second.stream(&id, None).await;
    let watcher = tokio::spawn(async move {
        let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
        let mut evaluation_frames = 0;
        while let Some(frame) = stream.next(Duration::from_secs(60)).await {
            match frame["type"].as_str() {
                Some("event") => {
                    let event = &frame["event"];
                    seen.entry(event["run_id"].as_str().unwrap_or("").to_owned())
                        .or_default()
                        .push(event["seq"].as_i64().unwrap_or(0));
                }
                Some("evaluation") => evaluation_frames += 1,
                _ => {}
            }
        }
        (seen, evaluation_frames)
    });

    eventually("a fifth of the runs to finish", LIMIT, || async {
        let evaluation = api.evaluation(&id).await;
        let done = evaluation["runs"]
            .as_array()?
            .iter()
            .filter(|r| r["state"] == "succeeded")
            .count();
        (done * 5 >= total).then_some(())
    })
    .await;
    // Kill the orchestrator running the most runs right now, so the kill matters.
    let pool = stack.db.connect().await;
    let busiest: String = eventually("an orchestrator to hold runs", LIMIT, || async {
        sqlx::query_scalar(
            "SELECT replica_id FROM run_claims WHERE released_at IS NULL
             GROUP BY replica_id ORDER BY count(*) DESC LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
    })
    .await;
    let victim = stack.replica_named(Service::Orchestrator, 3, &busiest);
    let killed_at = now_ns();
    stack.kill_replica(Service::Orchestrator, victim).await;
    stack.kill_replica(Service::ResultProcessor, 1).await;
    stack.kill_replica(Service::Gateway, 1).await;
    tokio::task::spawn_blocking(restart_rabbitmq)
        .await
        .expect("restart RabbitMQ");

    let evaluation = api.wait_finished(&id, LIMIT).await;
    let states: Vec<&str> = evaluation["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states.len(), total);
    assert!(
        states.iter().all(|s| *s == "succeeded"),
        "every run succeeded: {:?}",
        states
            .iter()
            .filter(|s| **s != "succeeded")
            .collect::<Vec<_>>()
    );
    assert_eq!(evaluation["status"], "succeeded");

    let mut all_events = Vec::with_capacity(total);
    for run in evaluation["runs"].as_array().expect("runs") {
        let run_id = run["id"].as_str().expect("id");
        let events = api.run_events(run_id).await;
        assert_contiguous(&events, 1, &format!("run {run_id}"));
        let last = run["attempt"].as_i64().expect("attempt");
        for n in 1..=LINES {
            let line = format!("line {n}");
            let copies = events
                .iter()
                .filter(|e| e["attempt"] == last && e["message"] == line.as_str())
                .count();
            assert_eq!(
                copies, 1,
                "run {run_id}: `{line}` of attempt {last} stored once"
            );
        }
        all_events.push(events);
    }
    let most = most_at_once(&all_events, killed_at);
    assert!(
        most <= QUOTA,
        "the team quota of {QUOTA} held at every moment (saw {most})"
    );
    assert!(most >= 2, "runs ran side by side (saw at most {most})");

    let retried: Vec<&Value> = evaluation["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter(|r| r["attempt"].as_i64().unwrap_or(1) > 1)
        .collect();
    assert!(
        !retried.is_empty(),
        "the killed orchestrator's runs were retried"
    );
    for events in &all_events {
        let retry = events.iter().find(|e| {
            e["type"] == "status" && e["reason"].as_str().unwrap_or("").contains("was lost")
        });
        if let Some(retry) = retry {
            assert!(
                retry["reason"].as_str().unwrap_or("").contains(&busiest),
                "the retry names the lost orchestrator: {retry}"
            );
        }
    }
    let starters: i64 = sqlx::query_scalar("SELECT count(DISTINCT replica_id) FROM run_claims")
        .fetch_one(&pool)
        .await
        .expect("claims");
    assert!(
        starters >= 2,
        "several orchestrators started runs ({starters})"
    );
    let lost: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM replicas WHERE end_state = 'lost' AND service = 'orchestrator'",
    )
    .fetch_one(&pool)
    .await
    .expect("replicas");
    assert_eq!(lost, 1, "the killed orchestrator was found lost");
    pool.close().await;

    let (seen, evaluation_frames) = watcher.await.expect("watcher");
    assert!(
        evaluation_frames > 0 && !seen.is_empty(),
        "the second gateway streamed the evaluation live before it was killed"
    );
    for (run, seqs) in &seen {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "run {run}: events arrived in order on the second gateway: {seqs:?}"
        );
    }
    eprintln!(
        "{total} runs, {} retried after the kill; at most {most} at once; {starters} orchestrators started runs",
        retried.len()
    );
    assert_eq!(stack.sandbox_processes(), Vec::<u32>::new());
    stack.stop().await;
}

/// Benchmark (scripts/bench.sh runs it; not part of CI): how fast 1 and 3 orchestrator
/// replicas drain `AIRLOCK_BENCH_DRAIN_RUNS` (default 2,000) runs of /bin/true, and how
/// long after a replica's kill -9 its last run is taken over. Prints numbers.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: scripts/bench.sh runs it"]
async fn bench_drain_and_takeover() {
    let runs: usize = std::env::var("AIRLOCK_BENCH_DRAIN_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    for orchestrators in [1, 3] {
        let rate = drain(orchestrators, runs).await;
        println!(
            "drain: {runs} runs of /bin/true, {orchestrators} orchestrator(s) x 4 slots: {rate:.1} runs/s"
        );
    }
    let took = takeover(3).await;
    println!(
        "takeover: kill -9 of the busiest of 3 orchestrators (lease 3 s) to its last run retried: {:.2} s",
        took.as_secs_f64()
    );
}

fn bench_stack(orchestrators: usize) -> StackOptions {
    StackOptions {
        capacity: 4,
        replicas: vec![(Service::Orchestrator, orchestrators)],
        env: vec![
            (
                Service::Orchestrator,
                "AIRLOCK_REPLICA_LEASE_SECS".into(),
                "3".into(),
            ),
            (
                Service::Orchestrator,
                "AIRLOCK_MAX_ATTEMPTS".into(),
                "5".into(),
            ),
        ],
        ..StackOptions::default()
    }
}

fn spec(runs: usize, command: &[&str]) -> Value {
    let epochs = 10;
    let tasks: Vec<Value> = (0..runs.div_ceil(epochs))
        .map(|i| json!({"id": format!("t{i}")}))
        .collect();
    json!({"name": "bench", "image": "img", "command": command, "tasks": tasks, "epochs": epochs})
}

/// Runs per second from submission to the evaluation's end.
async fn drain(orchestrators: usize, runs: usize) -> f64 {
    let stack = Stack::start(bench_stack(orchestrators)).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let started = std::time::Instant::now();
    let id = api.submit_ok(&spec(runs, &["true"])).await;
    let pool = stack.db.connect().await;
    eventually("the evaluation to finish", LIMIT, || async {
        let status: String =
            sqlx::query_scalar("SELECT status FROM evaluations WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .ok()?;
        matches!(status.as_str(), "succeeded" | "failed" | "cancelled").then_some(())
    })
    .await;
    let rate = runs as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    stack.stop().await;
    rate
}

/// From a kill -9 of the busiest replica until none of its claims is left unreleased.
async fn takeover(orchestrators: usize) -> Duration {
    let mut stack = Stack::start(bench_stack(orchestrators)).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    api.submit_ok(&spec(200, &["sleep", "2"])).await;
    let pool = stack.db.connect().await;
    let busiest: String = eventually("every replica to run something", LIMIT, || async {
        sqlx::query_scalar(
            "SELECT replica_id FROM run_claims WHERE released_at IS NULL
             GROUP BY replica_id HAVING count(*) >= 4 LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
    })
    .await;
    let victim = stack.replica_named(Service::Orchestrator, orchestrators, &busiest);
    let killed = std::time::Instant::now();
    stack.kill_replica(Service::Orchestrator, victim).await;
    let held: Vec<(sqlx::types::Uuid, i32)> = sqlx::query_as(
        "SELECT run_id, attempt FROM run_claims WHERE replica_id = $1 AND released_at IS NULL",
    )
    .bind(&busiest)
    .fetch_all(&pool)
    .await
    .expect("its claims");
    let (runs, attempts): (Vec<_>, Vec<_>) = held.into_iter().unzip();
    // Taken over = its next attempt was published and the claim released by the taker.
    eventually(
        "the killed replica's runs to be taken over",
        LIMIT,
        || async {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM run_claims c
             JOIN unnest($1::uuid[], $2::int[]) AS h(run_id, attempt)
               ON h.run_id = c.run_id AND h.attempt = c.attempt
             WHERE c.released_at IS NULL",
            )
            .bind(&runs)
            .bind(&attempts)
            .fetch_one(&pool)
            .await
            .ok()?;
            (left == 0).then_some(())
        },
    )
    .await;
    let took = killed.elapsed();
    pool.close().await;
    stack.stop().await;
    took
}

//! An evaluation's life as a user sees it: submit, watch live, read results; failures,
//! time limits and cancellation.

use airlock_test_support::{Stack, StackOptions, assert_contiguous, kubernetes, seqs};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

fn runs(evaluation: &Value) -> Vec<Value> {
    evaluation["runs"].as_array().cloned().unwrap_or_default()
}

fn status_states(events: &[Value]) -> Vec<String> {
    let mut states: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "status")
        .map(|e| e["state"].as_str().unwrap_or("").to_owned())
        .collect();
    states.dedup();
    states
}

#[tokio::test(flavor = "multi_thread")]
async fn evaluation_goes_live_from_submission_to_exact_scores() {
    let stack = Stack::start(StackOptions::default()).await;
    goes_live(&stack).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn evaluation_goes_live_through_the_kubernetes_runtime() {
    let (cluster, stack) = kubernetes::start(StackOptions::default(), kubernetes::kubelet()).await;
    goes_live(&stack).await;
    let pods = cluster.pods(kubernetes::NAMESPACE);
    assert_eq!(pods.len(), 6, "one pod per run, kept for inspection");
    assert!(
        pods.iter().all(|p| p["status"]["phase"] == "Succeeded"),
        "{pods:?}"
    );
    stack.stop().await;
}

async fn goes_live(stack: &Stack) {
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let spec = json!({
        "name": "three tasks, two epochs",
        "image": "python:3.12-slim",
        "command": ["sh", "-c", "v=$(sed -n 's/.*\"score\": *\\([0-9.]*\\).*/\\1/p' \"$AIRLOCK_TASK_INPUT\"); \
            echo \"task $AIRLOCK_TASK_ID epoch $AIRLOCK_EPOCH\"; \
            echo \"{\\\"type\\\":\\\"progress\\\",\\\"fraction\\\":0.5}\" >> \"$AIRLOCK_EVENTS\"; \
            echo \"{\\\"type\\\":\\\"score\\\",\\\"name\\\":\\\"accuracy\\\",\\\"value\\\":$v}\" >> \"$AIRLOCK_EVENTS\""],
        "tasks": [
            {"id": "t1", "input": {"score": 0.25}},
            {"id": "t2", "input": {"score": 0.5}},
            {"id": "t3", "input": {"score": 1}}
        ],
        "epochs": 2,
        "timeout": "60s",
        "labels": {"suite": "smoke"}
    });
    let submitted = api.submit(&spec).await;
    assert_eq!(submitted.status, 201, "{}", submitted.body);
    let id = submitted.body["id"].as_str().expect("id").to_owned();
    let mut stream = api.stream(&id, None).await;
    assert_eq!(submitted.body["status"], "queued");
    assert_eq!(submitted.body["runs"].as_array().map(Vec::len), Some(6));
    assert!(
        submitted.body["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r["state"] == "queued")
    );

    let mut per_run: HashMap<String, Vec<Value>> = HashMap::new();
    let mut first = true;
    let mut finished = false;
    while !finished {
        let frame = stream
            .next(LIMIT)
            .await
            .expect("stream stays open until the end");
        if first {
            assert_eq!(
                frame["type"], "snapshot",
                "first frame is the snapshot: {frame}"
            );
            assert_eq!(frame["evaluation"]["run_count"], 6);
            first = false;
        }
        match frame["type"].as_str() {
            Some("event") => {
                let event = frame["event"].clone();
                per_run
                    .entry(event["run_id"].as_str().expect("run id").to_owned())
                    .or_default()
                    .push(event);
            }
            Some("evaluation") => finished = frame["status"] == "succeeded",
            _ => {}
        }
    }
    stream.close().await;

    assert_eq!(per_run.len(), 6, "every run streamed events");
    for (run_id, events) in &per_run {
        assert_contiguous(events, 1, &format!("run {run_id}"));
        assert_eq!(
            status_states(events),
            ["queued", "scheduling", "starting", "running", "succeeded"],
            "run {run_id} went through every state"
        );
        assert!(events.iter().any(
            |e| e["type"] == "log" && e["message"].as_str().unwrap_or("").starts_with("task t")
        ));
        assert!(
            events
                .iter()
                .any(|e| e["type"] == "progress" && e["fraction"] == 0.5)
        );
        assert!(events.iter().any(|e| e["type"] == "exit" && e["code"] == 0));
    }

    let evaluation = api.evaluation(&id).await;
    assert_eq!(evaluation["status"], "succeeded");
    assert_eq!(
        evaluation["created_at"], submitted.body["created_at"],
        "the 201 body is what was stored"
    );
    let run_ids = |e: &Value| runs(e).iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(run_ids(&evaluation), run_ids(&submitted.body));
    assert_eq!(evaluation["counts"]["succeeded"], 6);
    let scores = evaluation["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 1);
    let accuracy = &scores[0];
    assert_eq!(accuracy["name"], "accuracy");
    assert_eq!(accuracy["count"], 6);
    assert!(
        (accuracy["mean"].as_f64().expect("mean") - 3.5 / 6.0).abs() < 1e-12,
        "{accuracy}"
    );
    assert_eq!(accuracy["min"], 0.25);
    assert_eq!(accuracy["max"], 1.0);
    let expected_stderr = {
        let values = [0.25, 0.25, 0.5, 0.5, 1.0, 1.0];
        let mean = 3.5 / 6.0;
        let var = values.iter().map(|v: &f64| (v - mean).powi(2)).sum::<f64>() / 5.0;
        (var / 6.0).sqrt()
    };
    assert!((accuracy["stderr"].as_f64().expect("stderr") - expected_stderr).abs() < 1e-12);
    for run in runs(&evaluation) {
        assert_eq!(run["state"], "succeeded");
        assert_eq!(run["exit_code"], 0);
        assert!(
            run["started_at"].is_string() && run["finished_at"].is_string(),
            "{run}"
        );
        let read = api
            .get(&format!("/api/v1/runs/{}", run["id"].as_str().expect("id")))
            .await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body["task_id"], run["task_id"]);
    }

    // A client that reconnects and resumes gets nothing twice: only what it has not seen.
    let (some_run, events) = per_run.iter().next().expect("a run");
    let seen: HashMap<String, i64> = per_run
        .iter()
        .filter(|(run, _)| *run != some_run)
        .map(|(run, events)| (run.clone(), events.len() as i64))
        .chain([(some_run.clone(), 2)])
        .collect();
    let mut resumed = api.stream(&id, Some(&seen)).await;
    let mut replayed = Vec::new();
    loop {
        let frame = resumed.next(LIMIT).await.expect("frame");
        match frame["type"].as_str() {
            Some("event") => replayed.push(frame["event"].clone()),
            Some("backlog_complete") => break,
            _ => {}
        }
    }
    let replayed_seqs = seqs(&replayed);
    assert!(replayed.iter().all(|e| e["run_id"] == some_run.as_str()));
    assert_eq!(replayed_seqs, (3..=events.len() as i64).collect::<Vec<_>>());
    resumed.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_and_overtime_commands_end_as_failed_and_timed_out() {
    let stack = Stack::start(StackOptions::default()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let failing = api
        .submit_ok(&json!({"name": "fails", "image": "img", "command": ["sh", "-c", "echo broken >&2; exit 3"]}))
        .await;
    let overtime = api
        .submit_ok(&json!({
            "name": "sleeps too long", "image": "img", "timeout": "2s",
            "command": ["sh", "-c", "(setsid sleep 300 &); sleep 300 & sleep 300"]
        }))
        .await;

    let failed = api.wait_finished(&failing, LIMIT).await;
    assert_eq!(failed["status"], "failed");
    let run = &runs(&failed)[0];
    assert_eq!(run["state"], "failed");
    assert_eq!(run["exit_code"], 3);
    assert_eq!(run["reason"], "exited with code 3");
    let events = api.run_events(run["id"].as_str().expect("id")).await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "log" && e["stream"] == "stderr" && e["message"] == "broken")
    );

    let timed = api.wait_finished(&overtime, LIMIT).await;
    assert_eq!(timed["status"], "failed");
    let run = &runs(&timed)[0];
    assert_eq!(run["state"], "timed_out");
    assert_eq!(run["reason"], "exceeded its time limit of 2s");
    assert_eq!(
        stack.sandbox_processes(),
        Vec::<u32>::new(),
        "no process of the sandbox survives"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_stops_running_sandboxes_and_queued_runs_never_start() {
    let stack = Stack::start(StackOptions {
        capacity: 1,
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let running = api
        .submit_ok(&json!({"name": "long", "image": "img", "command": ["sleep", "600"]}))
        .await;
    let running_run = runs(&api.evaluation(&running).await)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    api.wait_run_state(&running_run, "running", LIMIT).await;

    let waiting = api
        .submit_ok(&json!({"name": "waits", "image": "img", "command": ["true"], "tasks": [{"id": "a"}, {"id": "b"}]}))
        .await;
    let waiting_runs: Vec<String> = runs(&api.evaluation(&waiting).await)
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    let reason = airlock_test_support::eventually("a waiting reason", LIMIT, || async {
        let run = api
            .get(&format!("/api/v1/runs/{}", waiting_runs[0]))
            .await
            .body;
        (run["state"] == "scheduling").then(|| run["reason"].as_str().unwrap_or("").to_owned())
    })
    .await;
    assert_eq!(reason, "capacity full: 1 of 1 running on this orchestrator");

    let cancel = api
        .post(&format!("/api/v1/evaluations/{waiting}/cancel"))
        .await;
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    let cancelled = api.wait_finished(&waiting, LIMIT).await;
    assert_eq!(cancelled["status"], "cancelled");
    for run in &waiting_runs {
        let events = api.run_events(run).await;
        let states = status_states(&events);
        assert_eq!(states.last().map(String::as_str), Some("cancelled"));
        assert!(
            !states.iter().any(|s| s == "starting" || s == "running"),
            "never started: {states:?}"
        );
    }

    let asked = Instant::now();
    let cancel = api
        .post(&format!("/api/v1/evaluations/{running}/cancel"))
        .await;
    assert_eq!(cancel.status, 202);
    let stopped = api.wait_finished(&running, LIMIT).await;
    let took = asked.elapsed();
    println!("running sandbox cancelled in {took:?}");
    assert_eq!(stopped["status"], "cancelled");
    assert_eq!(runs(&stopped)[0]["state"], "cancelled");
    assert_eq!(stack.sandbox_processes(), Vec::<u32>::new());

    let again = api
        .post(&format!("/api/v1/evaluations/{running}/cancel"))
        .await;
    assert_eq!(again.status, 202, "cancel is idempotent: {}", again.body);
    assert_eq!(
        again.body["cancel_requested_at"],
        cancel.body["cancel_requested_at"]
    );

    let done = api
        .submit_ok(&json!({"name": "quick", "image": "img", "command": ["true"]}))
        .await;
    api.wait_finished(&done, LIMIT).await;
    let late = api
        .post(&format!("/api/v1/evaluations/{done}/cancel"))
        .await;
    assert_eq!(late.status, 409);
    assert_eq!(late.body["code"], "conflict");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_at_its_quota_waits_while_another_team_runs() {
    let stack = Stack::start(StackOptions {
        capacity: 2,
        team_quota: Some(1),
        ..StackOptions::default()
    })
    .await;
    let red = stack.api(&stack.token("alice", "red", "researcher").await);
    let blue = stack.api(&stack.token("bob", "blue", "researcher").await);
    let long = json!({"name": "long", "image": "img", "command": ["sleep", "600"]});
    let first = red.submit_ok(&long).await;
    let first_run = runs(&red.evaluation(&first).await)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    red.wait_run_state(&first_run, "running", LIMIT).await;

    let second = red.submit_ok(&long).await;
    let second_run = runs(&red.evaluation(&second).await)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let waiting = red.wait_run_state(&second_run, "scheduling", LIMIT).await;
    assert_eq!(waiting["reason"], "team quota reached: 1 of 1");

    let other = blue
        .submit_ok(&json!({"name": "blue", "image": "img", "command": ["true"]}))
        .await;
    assert_eq!(
        blue.wait_finished(&other, LIMIT).await["status"],
        "succeeded",
        "blue is not held up by red"
    );

    assert_eq!(
        red.post(&format!("/api/v1/evaluations/{first}/cancel"))
            .await
            .status,
        202
    );
    red.wait_run_state(&second_run, "running", LIMIT).await;
    assert_eq!(
        red.post(&format!("/api/v1/evaluations/{second}/cancel"))
            .await
            .status,
        202
    );
    red.wait_finished(&second, LIMIT).await;
    stack.stop().await;
}

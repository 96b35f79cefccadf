//! Nothing accepted is lost and nothing runs twice: a broker outage at submission, a
//! result-processor killed mid-run, a run request delivered twice.

use airlock_test_support::{
    Proxy, Service, Stack, StackOptions, assert_contiguous, eventually, redelivery_of_first_run,
};
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

async fn outbox_rows(stack: &Stack) -> i64 {
    let pool = stack.db.connect().await;
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_evaluation_accepted_while_rabbitmq_is_unreachable_runs_once_it_is_back() {
    let proxy = Proxy::start(5672).await;
    let stack = Stack::start(StackOptions {
        gateway_amqp_port: Some(proxy.port),
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    proxy.cut();
    let readyz = format!("{}/readyz", stack.url(Service::Gateway));
    eventually("the gateway to report RabbitMQ down", LIMIT, || async {
        let reply = reqwest::get(&readyz).await.ok()?;
        (reply.status().as_u16() == 503).then_some(())
    })
    .await;

    let id = api
        .submit_ok(&json!({"name": "during the outage", "image": "img", "command": ["echo", "made it"], "tasks": [{"id": "a"}, {"id": "b"}]}))
        .await;
    assert_eq!(api.evaluation(&id).await["status"], "queued");
    assert_eq!(
        outbox_rows(&stack).await,
        2,
        "both run requests wait in the outbox"
    );

    proxy.restore();
    let evaluation = api.wait_finished(&id, LIMIT).await;
    assert_eq!(evaluation["status"], "succeeded", "{evaluation}");
    assert_eq!(
        outbox_rows(&stack).await,
        0,
        "published messages leave the outbox"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_result_processor_mid_run_loses_and_duplicates_nothing() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let lines = 600;
    let id = api
        .submit_ok(&json!({
            "name": "chatty",
            "image": "img",
            "command": ["sh", "-c", format!("i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo \"line $i\"; \
                if [ $((i % 50)) -eq 0 ]; then echo '{{\"type\":\"score\",\"name\":\"n\",\"value\":1}}' >> \"$AIRLOCK_EVENTS\"; sleep 0.2; fi; done")],
        }))
        .await;
    let run_id = api.evaluation(&id).await["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    eventually("some output to be persisted", LIMIT, || async {
        let events = api.run_events(&run_id).await;
        (events.iter().filter(|e| e["type"] == "log").count() >= 50).then_some(())
    })
    .await;
    stack.kill(Service::ResultProcessor).await;
    stack.restart(Service::ResultProcessor).await;

    let evaluation = api.wait_finished(&id, LIMIT).await;
    assert_eq!(evaluation["status"], "succeeded");
    let events = api.run_events(&run_id).await;
    assert_contiguous(&events, 1, "the chatty run");
    let logged: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "log")
        .map(|e| e["message"].as_str().unwrap_or("").to_owned())
        .collect();
    let expected: Vec<String> = (1..=lines).map(|i| format!("line {i}")).collect();
    assert_eq!(logged, expected, "every line exactly once, in order");
    assert_eq!(
        evaluation["scores"][0]["count"],
        lines / 50,
        "every score counted once"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_run_request_never_starts_a_second_sandbox() {
    let stack = Stack::start(StackOptions::default()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let spec = json!({"name": "once", "image": "img", "command": ["sh", "-c", "echo started; sleep 2; echo done"]});
    let id = api.submit_ok(&spec).await;
    let evaluation = api.evaluation(&id).await;
    let run_id = evaluation["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    let duplicate = json!(redelivery_of_first_run(
        &evaluation,
        &["sh", "-c", "echo started; sleep 2; echo done"],
    ));
    let redeliver = || stack.publish_run_request(&duplicate);

    api.wait_run_state(&run_id, "running", LIMIT).await;
    redeliver().await;
    let finished = api.wait_finished(&id, LIMIT).await;
    assert_eq!(finished["status"], "succeeded");
    redeliver().await;
    eventually("the late duplicate to be skipped", LIMIT, || async {
        stack
            .log(Service::Orchestrator)
            .contains("redelivered request for a finished run; skipped")
            .then_some(())
    })
    .await;

    let events = api.run_events(&run_id).await;
    let count = |kind: &str, field: &str, value: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e[field] == value)
            .count()
    };
    assert_eq!(
        count("status", "state", "starting"),
        1,
        "one sandbox started"
    );
    assert_eq!(count("log", "message", "started"), 1);
    assert_eq!(events.iter().filter(|e| e["type"] == "exit").count(), 1);
    assert_eq!(api.evaluation(&id).await["runs"][0]["state"], "succeeded");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_answers_503_and_readiness_recovers_with_it() {
    let proxy = Proxy::start(5432).await;
    let stack = Stack::start(StackOptions {
        gateway_postgres_port: Some(proxy.port),
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    assert_eq!(api.get("/api/v1/evaluations").await.status, 200);
    proxy.cut();
    let reply = api.get("/api/v1/evaluations").await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (503, Some("unavailable")),
        "{}",
        reply.body
    );
    assert!(reply.headers.get("retry-after").is_some());
    assert!(
        !reply.body.to_string().contains("127.0.0.1"),
        "no internal detail leaks: {}",
        reply.body
    );
    let readyz = format!("{}/readyz", stack.url(Service::Gateway));
    eventually("the gateway to report PostgreSQL down", LIMIT, || async {
        let reply = reqwest::get(&readyz).await.ok()?;
        let body: Value = reply.json().await.ok()?;
        (body["checks"]["postgres"] == "down").then_some(())
    })
    .await;
    proxy.restore();
    eventually("the gateway to answer again", LIMIT, || async {
        (api.get("/api/v1/evaluations").await.status == 200).then_some(())
    })
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_cannot_be_read_goes_to_the_dead_letter_queue() {
    let stack = Stack::start(StackOptions::default()).await;
    stack
        .publish_run_request(&json!({"type": "run_requested.v999", "surprise": true}))
        .await;
    eventually("the message to be dead-lettered", LIMIT, || async {
        (stack.broker.queue_depth("airlock.dead-letters") == 1).then_some(())
    })
    .await;
    // The orchestrator carries on with readable work.
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let id = api
        .submit_ok(&json!({"name": "after poison", "image": "img", "command": ["true"]}))
        .await;
    assert_eq!(api.wait_finished(&id, LIMIT).await["status"], "succeeded");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_each_service_and_waiting_work_survives_an_orchestrator_restart() {
    let mut stack = Stack::start(StackOptions {
        capacity: 1,
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let long = api
        .submit_ok(&json!({"name": "long", "image": "img", "command": ["sleep", "600"]}))
        .await;
    let long_run = api.evaluation(&long).await["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    api.wait_run_state(&long_run, "running", LIMIT).await;
    let waiting = api
        .submit_ok(&json!({"name": "waiting", "image": "img", "command": ["true"]}))
        .await;
    let waiting_run = api.evaluation(&waiting).await["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    api.wait_run_state(&waiting_run, "scheduling", LIMIT).await;

    let status = stack.terminate(Service::Orchestrator).await;
    assert!(
        status.success(),
        "the orchestrator exits cleanly on SIGTERM: {status:?}"
    );
    let stopped = api.wait_run_state(&long_run, "scheduling", LIMIT).await;
    assert_eq!(
        stopped["attempt"], 2,
        "the stopped attempt is retried: {stopped}"
    );
    assert_eq!(
        stopped["reason"],
        "retrying in 1s after: the orchestrator shut down before the run finished (attempt 2 of 3)"
    );
    assert_eq!(stack.sandbox_processes(), Vec::<u32>::new());
    let still_waiting = api.get(&format!("/api/v1/runs/{waiting_run}")).await.body;
    assert_eq!(
        still_waiting["state"], "scheduling",
        "nothing new started while draining"
    );

    stack.restart(Service::Orchestrator).await;
    assert_eq!(
        api.wait_finished(&waiting, LIMIT).await["status"],
        "succeeded",
        "the waiting run was not lost"
    );
    api.wait_run_state(&long_run, "running", LIMIT).await;
    assert_eq!(
        api.post(&format!("/api/v1/evaluations/{long}/cancel"))
            .await
            .status,
        202
    );
    assert_eq!(api.wait_finished(&long, LIMIT).await["status"], "cancelled");
    for service in [
        Service::Gateway,
        Service::ResultProcessor,
        Service::Orchestrator,
    ] {
        let status = stack.terminate(service).await;
        assert!(
            status.success(),
            "{service:?} exits cleanly on SIGTERM: {status:?}"
        );
    }
    stack.db.drop_database().await;
    stack.broker.delete();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_lost_with_a_killed_orchestrator_is_retried_as_a_new_attempt() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let id = api
        .submit_ok(&json!({"name": "survives", "image": "img", "command": ["sh", "-c", "echo begin; sleep 3; echo finished"]}))
        .await;
    let run_id = api.evaluation(&id).await["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    api.wait_run_state(&run_id, "running", LIMIT).await;
    stack.kill(Service::Orchestrator).await;
    stack.restart(Service::Orchestrator).await;

    let evaluation = api.wait_finished(&id, LIMIT).await;
    assert_eq!(evaluation["status"], "succeeded", "{evaluation}");
    let run = &evaluation["runs"][0];
    assert_eq!(run["attempt"], 2);
    let events = api.run_events(&run_id).await;
    assert!(
        events.iter().any(|e| e["type"] == "status"
            && e["attempt"] == 2
            && e["reason"].as_str().unwrap_or("").contains("was lost")),
        "the retry says why: {events:?}"
    );
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "finished")
        .collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(
        finished[0]["attempt"], 2,
        "only the second attempt got to the end"
    );
    assert_eq!(stack.sandbox_processes(), Vec::<u32>::new());
    stack.stop().await;
}

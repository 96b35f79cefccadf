//! Request ids and trace context, read from the services' JSON logs: a submission's
//! W3C `traceparent` reaches the orchestrator and the result-processor through the
//! RabbitMQ message headers, and every log line about a run names its run, its
//! evaluation and its trace.

use airlock_test_support::{Service, Stack, StackOptions, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const REQUEST_ID: &str = "trace-test-request-1";

fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The values a log line gives `name`: the event's own field and those of its spans.
fn field<'a>(line: &'a Value, name: &str) -> Vec<&'a str> {
    let spans = line["spans"].as_array().into_iter().flatten();
    std::iter::once(line)
        .chain(std::iter::once(&line["span"]))
        .chain(spans)
        .filter_map(|scope| scope[name].as_str())
        .collect()
}

fn has(line: &Value, name: &str, value: &str) -> bool {
    field(line, name).contains(&value)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_submissions_trace_reaches_every_service_and_run_lines_name_their_run() {
    let stack = Stack::start(StackOptions::default()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);

    let me = api.get("/api/v1/me").await;
    let generated = me
        .headers
        .get("x-request-id")
        .expect("a request id is generated");
    assert!(!generated.is_empty());

    let spec = json!({
        "name": "traced",
        "image": "img",
        "command": ["sh", "-c", "echo hello"],
        "epochs": 2,
        "timeout": "60s"
    });
    let reply = api
        .submit_with_headers(
            &spec,
            &[("traceparent", TRACEPARENT), ("x-request-id", REQUEST_ID)],
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(REQUEST_ID.as_bytes()),
        "the request id is echoed"
    );
    let id = reply.body["id"].as_str().expect("id").to_owned();
    let evaluation = api.wait_finished(&id, Duration::from_secs(90)).await;
    assert_eq!(evaluation["status"], "succeeded", "{evaluation}");
    let runs: Vec<String> = evaluation["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["id"].as_str().expect("run id").to_owned())
        .collect();
    assert_eq!(runs.len(), 2);

    // The gateway: the submission's line carries the request id and the caller's trace.
    let gateway = json_lines(&stack.log(Service::Gateway));
    assert!(
        gateway
            .iter()
            .any(|line| line["message"] == "evaluation accepted"
                && has(line, "evaluation_id", &id)
                && has(line, "request_id", REQUEST_ID)
                && has(line, "trace_id", TRACE_ID)),
        "the gateway logs the submission with its request id and trace id"
    );

    // The result-processor logs each run's end (after its commit: wait for the line).
    eventually(
        "the result-processor to log both runs' end",
        Duration::from_secs(30),
        || async {
            let lines = json_lines(&stack.log(Service::ResultProcessor));
            runs.iter()
                .all(|run| {
                    lines.iter().any(|line| {
                        line["message"] == "run finished"
                            && has(line, "run_id", run)
                            && has(line, "trace_id", TRACE_ID)
                    })
                })
                .then_some(())
        },
    )
    .await;

    for service in [Service::Orchestrator, Service::ResultProcessor] {
        let log = stack.log(service);
        let lines = json_lines(&log);
        for run in &runs {
            // A run appears as its id, or inside its sandbox's name (the simple form).
            let simple = run.replace('-', "");
            let about: Vec<&Value> = lines
                .iter()
                .filter(|line| {
                    let text = line.to_string();
                    text.contains(run.as_str()) || text.contains(&simple)
                })
                .collect();
            assert!(
                !about.is_empty(),
                "{} logs about run {run}: {about:#?}",
                service.binary()
            );
            for line in about {
                assert!(
                    has(line, "run_id", run)
                        && has(line, "evaluation_id", &id)
                        && has(line, "trace_id", TRACE_ID),
                    "{}: a line about run {run} names the run, its evaluation and the \
                     submission's trace: {line}",
                    service.binary()
                );
            }
        }
    }
    stack.stop().await;
}

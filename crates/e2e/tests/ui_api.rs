//! What the web UI reads besides the backbone: who the caller is, listings sorted and
//! filtered by name and owner, each run's scores, capacity and load, streams narrowed to
//! one run or to none, the team's stream, and a token offered as a WebSocket
//! subprotocol (browsers cannot set headers on a WebSocket).

use airlock_test_support::{Api, SocketAuth, Stack, StackOptions, Stream, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn names(reply: &Value) -> Vec<String> {
    reply["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect()
}

/// Every page of a listing, following `next_cursor`.
async fn all_pages(api: &Api, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/evaluations?{query}"),
            Some(c) => format!("/api/v1/evaluations?{query}&cursor={c}"),
        };
        let reply = api.get(&path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        out.extend(names(&reply.body));
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

/// Frames until (and including) the first one of type `until`.
async fn frames_until(stream: &mut Stream, until: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = stream
            .next(LIMIT)
            .await
            .expect("stream closed before the expected frame");
        let done = frame["type"] == until;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_sort_and_filter_by_name_and_owner_and_carry_scores() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.api(&stack.token("alice", "red", "researcher").await);
    let bob = stack.api(&stack.token("bob", "red", "researcher").await);

    let me = alice.get("/api/v1/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(
        (&me.body["user"], &me.body["team"], &me.body["role"]),
        (&json!("alice"), &json!("red"), &json!("researcher"))
    );

    let scoring = json!([
        "sh",
        "-c",
        "echo \"{\\\"type\\\":\\\"score\\\",\\\"name\\\":\\\"accuracy\\\",\\\"value\\\":$AIRLOCK_EPOCH}\" >> \"$AIRLOCK_EVENTS\""
    ]);
    let mut ids = Vec::new();
    for (api, name) in [
        (&alice, "Alpha one"),
        (&alice, "beta_two"),
        (&alice, "Gamma 100%"),
        (&bob, "alpha three"),
    ] {
        ids.push(
            api.submit_ok(&json!({"name": name, "image": "img", "command": scoring, "epochs": 2}))
                .await,
        );
    }
    for id in &ids {
        alice.wait_finished(id, LIMIT).await;
    }

    assert_eq!(
        all_pages(&alice, "sort=name_asc&limit=2").await,
        ["Alpha one", "alpha three", "beta_two", "Gamma 100%"],
        "A to Z ignoring case, across pages"
    );
    assert_eq!(
        all_pages(&alice, "sort=name_desc&limit=3").await,
        ["Gamma 100%", "beta_two", "alpha three", "Alpha one"]
    );
    assert_eq!(
        all_pages(&alice, "sort=oldest&limit=3").await,
        ["Alpha one", "beta_two", "Gamma 100%", "alpha three"]
    );
    assert_eq!(
        all_pages(&alice, "name=ALPHA&limit=1").await,
        ["alpha three", "Alpha one"],
        "name filter ignores case; newest first by default"
    );
    assert_eq!(
        all_pages(&alice, "name=_").await,
        ["beta_two"],
        "_ is literal"
    );
    assert_eq!(
        all_pages(&alice, "name=100%25").await,
        ["Gamma 100%"],
        "% is literal"
    );
    assert_eq!(all_pages(&alice, "owner=bob").await, ["alpha three"]);
    assert_eq!(
        all_pages(&alice, "owner=bob&name=gamma").await,
        Vec::<String>::new()
    );

    let page = alice.get("/api/v1/evaluations?sort=name_asc&limit=1").await;
    let cursor = page.body["next_cursor"].as_str().expect("more pages");
    let mismatched = alice
        .get(&format!("/api/v1/evaluations?sort=newest&cursor={cursor}"))
        .await;
    assert_eq!(
        (mismatched.status, &mismatched.body["code"]),
        (400, &json!("malformed_request")),
        "a cursor is only valid in the order that made it"
    );
    assert_eq!(
        alice.get("/api/v1/evaluations?sort=sideways").await.status,
        400
    );

    let listed = alice.get("/api/v1/evaluations?limit=1").await;
    let headline = &listed.body["items"][0]["scores"][0];
    assert_eq!(
        (&headline["name"], &headline["count"], &headline["mean"]),
        (&json!("accuracy"), &json!(2), &json!(1.5)),
        "each listed evaluation carries its score aggregates"
    );

    let without_runs = alice
        .get(&format!("/api/v1/evaluations/{}?runs=false", ids[0]))
        .await;
    assert_eq!(
        (
            without_runs.status,
            &without_runs.body["runs"],
            &without_runs.body["name"]
        ),
        (200, &json!([]), &json!("Alpha one")),
        "runs=false leaves the runs to the stream"
    );
    let evaluation = alice.evaluation(&ids[0]).await;
    for run in evaluation["runs"].as_array().expect("runs") {
        assert_eq!(
            run["scores"]["accuracy"].as_f64(),
            run["epoch"].as_f64(),
            "each run carries its latest score per name: {run}"
        );
        let events = alice.run_events(run["id"].as_str().expect("run id")).await;
        assert_eq!(
            run["seq"],
            events.last().expect("events")["seq"],
            "a run's seq is its latest event's"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_system_view_shows_capacity_quota_and_what_waits() {
    let stack = Stack::start(StackOptions {
        capacity: 1,
        team_quota: Some(1),
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let (system, orchestrator) = eventually("the orchestrator's report", LIMIT, || {
        let api = api.clone();
        async move {
            let system = api.get("/api/v1/system").await.body;
            let orchestrator = system["replicas"]
                .as_array()?
                .iter()
                .find(|r| r["service"] == "orchestrator")?
                .clone();
            Some((system, orchestrator))
        }
    })
    .await;
    assert_eq!(orchestrator["runtime"], "local");
    assert_eq!(orchestrator["capacity"], 1);
    assert_eq!(orchestrator["state"], "live");
    assert_eq!(system["capacity"], 1);
    assert_eq!(system["team_max_concurrent_runs"], 1);
    let result_processor = system["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .find(|r| r["service"] == "result-processor")
        .expect("the result-processor is listed");
    assert_eq!(result_processor["state"], "live");
    assert!(
        result_processor["lease_expires_at"].as_str() > result_processor["heartbeat_at"].as_str(),
        "{result_processor}"
    );

    let blocker = api
        .submit_ok(
            &json!({"name": "holds the only slot", "image": "img", "command": ["sleep", "600"]}),
        )
        .await;
    let blocker_run = api.evaluation(&blocker).await["runs"][0]["id"]
        .as_str()
        .expect("run id")
        .to_owned();
    api.wait_run_state(&blocker_run, "running", LIMIT).await;
    let waiting = api
        .submit_ok(&json!({"name": "waits", "image": "img", "command": ["true"], "epochs": 2}))
        .await;
    let load = eventually("two runs waiting behind one running", LIMIT, || {
        let api = api.clone();
        async move {
            let system = api.get("/api/v1/system").await.body;
            (system["queued"] == 2).then_some(system)
        }
    })
    .await;
    assert_eq!(
        (
            &load["running"],
            &load["team_queued"],
            &load["team_running"]
        ),
        (&json!(1), &json!(2), &json!(1))
    );
    let other_team = stack.api(&stack.token("carol", "blue", "viewer").await);
    let theirs = other_team.get("/api/v1/system").await.body;
    assert_eq!(
        (
            &theirs["queued"],
            &theirs["running"],
            &theirs["team_queued"],
            &theirs["team_running"]
        ),
        (&json!(2), &json!(1), &json!(0), &json!(0)),
        "platform-wide counts are shared; team counts are the caller's own"
    );

    for id in [&blocker, &waiting] {
        assert_eq!(
            api.post(&format!("/api/v1/evaluations/{id}/cancel"))
                .await
                .status,
            202
        );
        api.wait_finished(id, LIMIT).await;
    }
    let idle = api.get("/api/v1/system").await.body;
    assert_eq!((&idle["queued"], &idle["running"]), (&json!(0), &json!(0)));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_narrow_to_one_run_or_none_and_browsers_authenticate_by_subprotocol() {
    let stack = Stack::start(StackOptions::default()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let id = api
        .submit_ok(&json!({
            "name": "two tasks",
            "image": "img",
            "command": ["sh", "-c", "echo task $AIRLOCK_TASK_ID"],
            "tasks": [{"id": "a"}, {"id": "b"}]
        }))
        .await;
    let evaluation = api.wait_finished(&id, LIMIT).await;
    let run_ids: Vec<String> = evaluation["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();

    let path = format!(
        "/api/v1/evaluations/{id}/stream?events={}&runs=true",
        run_ids[0]
    );
    let mut one = api
        .open_socket(&path, SocketAuth::Subprotocol)
        .await
        .expect("upgrade with the token as a subprotocol");
    assert_eq!(one.protocol.as_deref(), Some("airlock.v1"));
    let frames = frames_until(&mut one, "backlog_complete").await;
    let snapshot_runs = frames[0]["runs"].as_array().expect("runs in the snapshot");
    assert_eq!(snapshot_runs.len(), 1);
    assert_eq!(snapshot_runs[0]["id"], json!(run_ids[0]));
    let events: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| &f["event"])
        .collect();
    let stored = api.run_events(&run_ids[0]).await;
    assert_eq!(events.len(), stored.len(), "every event of that run");
    assert!(
        events.iter().all(|e| e["run_id"] == json!(run_ids[0])),
        "and only of that run"
    );
    one.close().await;

    let mut none = api
        .open_socket(
            &format!("/api/v1/evaluations/{id}/stream?events=none&runs=true"),
            SocketAuth::Header,
        )
        .await
        .expect("upgrade");
    let frames = frames_until(&mut none, "backlog_complete").await;
    assert_eq!(
        frames.len(),
        2,
        "a snapshot then backlog_complete, no events"
    );
    assert_eq!(frames[0]["runs"].as_array().expect("runs").len(), 2);
    none.close().await;

    let other = api
        .submit_ok(&json!({"name": "other", "image": "img", "command": ["true"]}))
        .await;
    let other_run = api.evaluation(&other).await["runs"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for events in [
        other_run.as_str(),
        "not-a-run",
        "01900000-0000-7000-8000-000000000000",
    ] {
        let refused = api
            .open_socket(
                &format!("/api/v1/evaluations/{id}/stream?events={events}"),
                SocketAuth::Header,
            )
            .await
            .map(|_| ())
            .expect_err("not a run of this evaluation");
        assert_eq!(refused, 404, "events={events}");
    }
    let stranger = Api::new(
        &stack.url(airlock_test_support::Service::Gateway),
        "alk_nope",
    );
    let refused = stranger
        .open_socket(
            &format!("/api/v1/evaluations/{id}/stream"),
            SocketAuth::Subprotocol,
        )
        .await
        .map(|_| ())
        .expect_err("a bad token");
    assert_eq!(refused, 401);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_team_stream_reports_every_change_to_the_teams_evaluations_and_no_other() {
    let stack = Stack::start(StackOptions::default()).await;
    let red = stack.api(&stack.token("alice", "red", "researcher").await);
    let blue = stack.api(&stack.token("bob", "blue", "researcher").await);
    let mut stream = red
        .open_socket("/api/v1/stream", SocketAuth::Subprotocol)
        .await
        .expect("upgrade");
    assert_eq!(stream.protocol.as_deref(), Some("airlock.v1"));
    let first = stream.next(LIMIT).await.expect("a frame");
    assert_eq!(
        first["type"], "backlog_complete",
        "subscribed: read the list now"
    );

    // Blue's evaluation finishes before red's is submitted, so any frame of blue's
    // would arrive before red's first.
    let theirs = blue
        .submit_ok(&json!({"name": "blue's", "image": "img", "command": ["true"]}))
        .await;
    blue.wait_finished(&theirs, LIMIT).await;
    let ours = red
        .submit_ok(&json!({
            "name": "red's",
            "image": "img",
            "command": ["sh", "-c", "echo '{\"type\":\"score\",\"name\":\"f1\",\"value\":0.5}' >> \"$AIRLOCK_EVENTS\""]
        }))
        .await;
    let mut frames = Vec::new();
    loop {
        let frame = stream.next(LIMIT).await.expect("a frame");
        let done = frame["status"] == "succeeded";
        frames.push(frame);
        if done {
            break;
        }
    }
    assert!(
        frames
            .iter()
            .all(|f| f["type"] == "evaluation" && f["id"] == json!(ours)),
        "only red's evaluation: {frames:?}"
    );
    let last = frames.last().expect("frames");
    assert_eq!(last["counts"]["succeeded"], 1);
    let stored = red.evaluation(&ours).await;
    assert_eq!(
        (&last["started_at"], &last["finished_at"]),
        (&stored["started_at"], &stored["finished_at"]),
        "frames carry the evaluation's timing"
    );
    assert!(
        frames.iter().any(|f| f["scores"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "f1"))),
        "score changes arrive with the evaluation frames"
    );
    stream.close().await;
    stack.stop().await;
}

//! A large evaluation's runs, read as a client of the API reads them: the first page in
//! the evaluation's own answer, the rest through the paged runs endpoint, filtered by
//! state, sorted by score or duration, and each score's histogram, with every bad
//! parameter refused by its code.

use airlock_test_support::{Api, Stack, StackOptions};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);
const TASKS: usize = 3;
const EPOCHS: u64 = 70;

/// Every page of `/runs?{query}`, following `next_cursor`; asserts no page is larger
/// than asked.
async fn all_pages(api: &Api, id: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/evaluations/{id}/runs?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let reply = api.get(&path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let items = reply.body["items"].as_array().expect("items").clone();
        assert!(items.len() <= limit, "{path}: {} items", items.len());
        out.extend(items);
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

fn score(run: &Value) -> Option<f64> {
    run["scores"]["s"].as_f64()
}

fn duration_us(run: &Value) -> Option<i64> {
    let at = |field: &str| {
        run[field]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    (at("finished_at")? - at("started_at")?).num_microseconds()
}

fn order_key(run: &Value) -> (String, u64) {
    (
        run["task_id"].as_str().expect("task").to_owned(),
        run["epoch"].as_u64().expect("epoch"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_evaluations_runs_are_paged_filtered_sorted_and_summarised() {
    let stack = Stack::start(StackOptions {
        capacity: 8,
        ..StackOptions::default()
    })
    .await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    // Every fifth epoch fails before scoring; the others score (epoch * 7) mod 11.
    let command = json!([
        "sh",
        "-c",
        "if [ $((AIRLOCK_EPOCH % 5)) -eq 0 ]; then exit 3; fi; \
         echo \"{\\\"type\\\":\\\"score\\\",\\\"name\\\":\\\"s\\\",\\\"value\\\":$(( (AIRLOCK_EPOCH * 7) % 11 ))}\" >> \"$AIRLOCK_EVENTS\""
    ]);
    let tasks: Vec<Value> = (0..TASKS).map(|t| json!({"id": format!("t{t}")})).collect();
    let submitted = api
        .submit(&json!({"name": "paged", "image": "img", "command": command, "epochs": EPOCHS, "tasks": tasks}))
        .await;
    assert_eq!(submitted.status, 201, "{}", submitted.body);
    let id = submitted.body["id"].as_str().expect("id").to_owned();
    let total = TASKS * EPOCHS as usize;
    assert_eq!(submitted.body["run_count"], total);
    assert_eq!(
        submitted.body["runs"].as_array().map(Vec::len),
        Some(100),
        "the answer carries the first page only"
    );
    let cursor = submitted.body["runs_next_cursor"]
        .as_str()
        .expect("a cursor to the rest");
    let rest = api
        .get(&format!(
            "/api/v1/evaluations/{id}/runs?limit=1000&cursor={cursor}"
        ))
        .await;
    assert_eq!(
        rest.body["items"].as_array().map(Vec::len),
        Some(total - 100)
    );
    assert_eq!(rest.body["next_cursor"], Value::Null);

    api.wait_finished(&id, LIMIT).await;

    let by_task = all_pages(&api, &id, "", 64).await;
    assert_eq!(by_task.len(), total);
    let expected: Vec<(String, u64)> = (0..TASKS)
        .flat_map(|t| (1..=EPOCHS).map(move |e| (format!("t{t}"), e)))
        .collect();
    assert_eq!(
        by_task.iter().map(order_key).collect::<Vec<_>>(),
        expected,
        "task (in spec order) then epoch, every run once"
    );
    let read = api.get(&format!("/api/v1/evaluations/{id}")).await.body;
    assert_eq!(read["runs"].as_array().map(Vec::len), Some(100));
    assert_eq!(read["runs"][99]["id"], by_task[99]["id"]);

    let failed = all_pages(&api, &id, "state=failed", 10).await;
    assert_eq!(failed.len(), TASKS * (EPOCHS / 5) as usize);
    assert!(
        failed
            .iter()
            .all(|r| r["state"] == "failed" && r["epoch"].as_u64().expect("epoch") % 5 == 0)
    );
    let finished = all_pages(&api, &id, "state=succeeded,%20failed", 1000).await;
    assert_eq!(finished.len(), total);
    assert!(all_pages(&api, &id, "state=running", 10).await.is_empty());

    for (sort, descending) in [("score_desc:s", true), ("score_asc:s", false)] {
        let runs = all_pages(&api, &id, &format!("sort={sort}"), 37).await;
        let ids: HashSet<&str> = runs.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids.len(), total, "{sort}: every run once");
        let scored: Vec<f64> = runs.iter().map_while(score).collect();
        assert_eq!(
            scored.len(),
            total - failed.len(),
            "{sort}: unscored runs last"
        );
        assert!(runs[scored.len()..].iter().all(|r| score(r).is_none()));
        assert!(
            scored.windows(2).all(|w| if descending {
                w[0] >= w[1]
            } else {
                w[0] <= w[1]
            }),
            "{sort}: {scored:?}"
        );
        for tie in runs[..scored.len()].chunk_by(|a, b| score(a) == score(b)) {
            let keys: Vec<_> = tie.iter().map(order_key).collect();
            assert!(keys.is_sorted(), "{sort}: ties in task order: {keys:?}");
        }
    }
    let longest = all_pages(&api, &id, "sort=duration_desc", 50).await;
    let durations: Vec<i64> = longest
        .iter()
        .map(|r| duration_us(r).expect("finished"))
        .collect();
    assert_eq!(durations.len(), total);
    assert!(durations.windows(2).all(|w| w[0] >= w[1]), "{durations:?}");

    let histogram = api
        .get(&format!("/api/v1/evaluations/{id}/scores/s/histogram"))
        .await;
    assert_eq!(histogram.status, 200, "{}", histogram.body);
    let scored = (total - failed.len()) as u64;
    assert_eq!(histogram.body["count"], scored);
    let bins = histogram.body["bins"].as_array().expect("bins");
    assert_eq!(
        bins.iter().filter_map(|b| b["count"].as_u64()).sum::<u64>(),
        scored
    );
    assert_eq!(
        (
            bins[0]["lo"].as_f64(),
            bins.last().expect("bins")["hi"].as_f64()
        ),
        (Some(0.0), Some(10.0))
    );
    let none = api
        .get(&format!(
            "/api/v1/evaluations/{id}/scores/nothing/histogram"
        ))
        .await;
    assert_eq!(
        (&none.body["count"], &none.body["bins"]),
        (&json!(0), &json!([]))
    );

    let page = api
        .get(&format!("/api/v1/evaluations/{id}/runs?limit=5"))
        .await;
    let task_cursor = page.body["next_cursor"].as_str().expect("more").to_owned();
    for query in [
        "limit=0".to_owned(),
        "limit=1001".to_owned(),
        "sort=newest".to_owned(),
        "sort=score_desc:".to_owned(),
        "state=asleep".to_owned(),
        "cursor=garbage".to_owned(),
        format!("sort=duration_desc&cursor={task_cursor}"),
    ] {
        let refused = api
            .get(&format!("/api/v1/evaluations/{id}/runs?{query}"))
            .await;
        assert_eq!(
            (refused.status, &refused.body["code"]),
            (400, &json!("malformed_request")),
            "{query}: {}",
            refused.body
        );
    }
    let stranger = stack.api(&stack.token("bob", "blue", "researcher").await);
    for path in [
        format!("/api/v1/evaluations/{id}/runs"),
        format!("/api/v1/evaluations/{id}/scores/s/histogram"),
        "/api/v1/evaluations/01900000-0000-7000-8000-000000000000/runs".to_owned(),
    ] {
        let hidden = stranger.get(&path).await;
        assert_eq!(
            (hidden.status, &hidden.body["code"]),
            (404, &json!("not_found")),
            "{path}"
        );
    }
    stack.stop().await;
}

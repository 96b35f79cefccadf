//! The result-processor's transaction against a real PostgreSQL: idempotent events, the
//! state machine, aggregates.

use airlock_core::event::{EventBody, LogStream, WorkerEvent};
use airlock_core::messages::{RunEvents, RunReport, RunStatusChange};
mod common;

use airlock_core::RunState;
use chrono::Utc;
use common::{Fixture, fixture};

fn events(f: &Fixture, attempt: u32, seqs: std::ops::RangeInclusive<u64>) -> RunReport {
    RunReport::EventsV1(RunEvents {
        run_id: f.run,
        evaluation_id: f.evaluation,
        attempt,
        events: seqs
            .map(|seq| WorkerEvent {
                seq,
                ts: Utc::now(),
                body: if seq % 2 == 0 {
                    EventBody::Score {
                        name: "acc".into(),
                        value: seq as f64,
                    }
                } else {
                    EventBody::Log {
                        stream: LogStream::Stdout,
                        message: format!("line {seq}"),
                        truncated: false,
                    }
                },
            })
            .collect(),
    })
}

fn status(f: &Fixture, attempt: u32, state: RunState) -> RunReport {
    RunReport::StatusV1(RunStatusChange {
        run_id: f.run,
        evaluation_id: f.evaluation,
        attempt,
        state,
        reason: None,
        exit_code: None,
        at: Utc::now(),
    })
}

#[tokio::test]
async fn events_are_stored_once_even_when_a_batch_repeats_them() {
    let f = fixture(&[]).await;
    let applied = f
        .results
        .apply_reports(&[
            events(&f, 1, 1..=4),
            events(&f, 1, 3..=6),
            events(&f, 1, 1..=4),
        ])
        .await
        .expect("apply");
    assert_eq!((applied.events_stored, applied.duplicates), (6, 6));
    let again = f
        .results
        .apply_reports(&[events(&f, 1, 5..=8)])
        .await
        .expect("apply again");
    assert_eq!((again.events_stored, again.duplicates), (2, 2));

    let stored = f.gateway.run_events(f.run, 0, 100).await.expect("events");
    let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=9).collect::<Vec<_>>(),
        "the queued status, then 8 events"
    );
    assert!(matches!(
        stored[0].body,
        EventBody::Status {
            state: RunState::Queued,
            ..
        }
    ));
    let scores = f.gateway.scores_of(f.evaluation).await.expect("scores");
    assert_eq!(scores[0].count, 4, "scores 2, 4, 6, 8, each once");
    assert_eq!(scores[0].mean, 5.0);
    f.database.drop_database().await;
}

#[tokio::test]
async fn the_state_machine_rejects_going_back_and_accepts_a_new_attempt() {
    let f = fixture(&[]).await;
    let applied = f
        .results
        .apply_reports(&[
            status(&f, 1, RunState::Scheduling),
            status(&f, 1, RunState::Running),
            status(&f, 1, RunState::Starting),
            status(&f, 1, RunState::Running),
        ])
        .await
        .expect("apply");
    assert_eq!(applied.rejected.len(), 1, "{:?}", applied.rejected);
    let run = f.gateway.run(f.run).await.expect("read").expect("run").0;
    assert_eq!(run.state, RunState::Running);

    let retry = f
        .results
        .apply_reports(&[status(&f, 2, RunState::Scheduling)])
        .await
        .expect("retry");
    assert!(retry.rejected.is_empty());
    let stale = f
        .results
        .apply_reports(&[status(&f, 1, RunState::Succeeded)])
        .await
        .expect("stale");
    assert_eq!(
        stale.rejected.len(),
        1,
        "an older attempt's news is ignored"
    );
    f.results
        .apply_reports(&[status(&f, 2, RunState::Succeeded)])
        .await
        .expect("finish");
    let done = f.gateway.run(f.run).await.expect("read").expect("run").0;
    assert_eq!((done.state, done.attempt), (RunState::Succeeded, 2));
    let late = f
        .results
        .apply_reports(&[status(&f, 2, RunState::Failed)])
        .await
        .expect("late");
    assert_eq!(late.rejected.len(), 1, "a terminal state never changes");
    let evaluation = f
        .gateway
        .evaluation(f.evaluation, None)
        .await
        .expect("read")
        .expect("evaluation");
    assert_eq!(evaluation.status, airlock_core::EvaluationStatus::Succeeded);
    assert_eq!(evaluation.counts.succeeded, 1);
    assert_eq!(evaluation.counts.total(), 1);
    f.database.drop_database().await;
}

#[tokio::test]
async fn a_runs_start_and_end_are_timed_once_and_counted_by_state() {
    let f = fixture(&[]).await;
    let placed = f
        .results
        .apply_reports(&[
            status(&f, 1, RunState::Scheduling),
            status(&f, 1, RunState::Starting),
            status(&f, 1, RunState::Running),
        ])
        .await
        .expect("apply");
    assert_eq!(placed.started.len(), 1, "{:?}", placed.started);
    assert_eq!(
        (placed.started[0].run_id, placed.started[0].state),
        (f.run, RunState::Running)
    );
    assert!(placed.started[0].seconds >= 0.0);
    assert!(placed.finished.is_empty());

    let again = f
        .results
        .apply_reports(&[status(&f, 1, RunState::Running)])
        .await
        .expect("repeat");
    assert!(again.started.is_empty(), "a repeated state is not a start");

    let done = f
        .results
        .apply_reports(&[status(&f, 1, RunState::Succeeded)])
        .await
        .expect("finish");
    assert_eq!(done.finished.len(), 1);
    let finished = &done.finished[0];
    assert_eq!(
        (finished.run_id, finished.evaluation_id, finished.state),
        (f.run, f.evaluation, RunState::Succeeded)
    );
    let late = f
        .results
        .apply_reports(&[status(&f, 1, RunState::Failed)])
        .await
        .expect("late");
    assert!(late.finished.is_empty(), "a run finishes once");
    assert_eq!(
        (late.rejected[0].run_id, late.rejected[0].evaluation_id),
        (f.run, f.evaluation),
        "a refused report names its run"
    );

    let counts = f.results.runs_by_state().await.expect("counts");
    assert_eq!(counts.len(), RunState::ALL.len(), "every state is listed");
    for (state, count) in counts {
        let expected = i64::from(state == RunState::Succeeded);
        assert_eq!(count, expected, "{state}");
    }
    f.database.drop_database().await;
}

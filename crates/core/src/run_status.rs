//! How a reported status changes a run: the state machine applied to a run snapshot and
//! one status report, attempts included. Pure; the result-processor calls it for every
//! status it stores.

use crate::RunState;
use crate::messages::{RunSnapshot, RunStatusChange};

/// What a reported status did to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The run already was in that state (a repeat): nothing to store.
    Unchanged,
    /// Refused, with the reason to log (an older attempt, a transition the state
    /// machine forbids).
    Rejected(String),
    /// `started`: the run started running for the first time.
    Changed { from: RunState, started: bool },
}

/// Applies a status an orchestrator reported to the run, following the state machine:
/// a status of an older attempt is rejected; one of a newer attempt (a retry) starts the
/// run's path again unless the run has ended; a repeat changes nothing; anything else
/// must be a transition [`RunState::transition`] allows. Timestamps come from the report.
pub fn apply_status(run: &mut RunSnapshot, change: &RunStatusChange) -> StatusOutcome {
    if change.attempt < run.attempt {
        return StatusOutcome::Rejected(format!(
            "run {}: {} for attempt {} ignored, the run is at attempt {}",
            run.id, change.state, change.attempt, run.attempt
        ));
    }
    if change.attempt > run.attempt {
        // A retry: the run starts its path again as a new attempt, unless it already ended.
        if run.state.is_terminal()
            || change.state.is_terminal() && change.state != RunState::Cancelled
        {
            return StatusOutcome::Rejected(format!(
                "run {}: attempt {} cannot begin with {} from {}",
                run.id, change.attempt, change.state, run.state
            ));
        }
        let from = run.state;
        run.attempt = change.attempt;
        run.state = change.state;
        run.reason = change.reason.clone();
        run.exit_code = None;
        if change.state.is_terminal() {
            run.finished_at = Some(change.at);
        }
        return StatusOutcome::Changed {
            from,
            started: false,
        };
    }
    if run.state == change.state
        && (run.state != RunState::Scheduling || run.reason == change.reason)
    {
        return StatusOutcome::Unchanged;
    }
    if let Err(invalid) = run.state.transition(change.state) {
        return StatusOutcome::Rejected(format!("run {}: {invalid}", run.id));
    }
    let from = run.state;
    run.state = change.state;
    run.reason = change.reason.clone();
    if change.exit_code.is_some() {
        run.exit_code = change.exit_code;
    }
    let started = change.state == RunState::Running && run.started_at.is_none();
    if started {
        run.started_at = Some(change.at);
    }
    if change.state.is_terminal() {
        run.finished_at = Some(change.at);
    }
    StatusOutcome::Changed { from, started }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EvaluationId, RunId};
    use chrono::{DateTime, Utc};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid")
    }

    fn run(state: RunState, attempt: u32) -> RunSnapshot {
        RunSnapshot {
            id: RunId::new(),
            evaluation_id: EvaluationId::new(),
            task_id: "t".into(),
            epoch: 1,
            attempt,
            state,
            reason: None,
            exit_code: None,
            created_at: at(0),
            started_at: None,
            finished_at: None,
            scores: Default::default(),
            seq: 1,
        }
    }

    fn change(run: &RunSnapshot, state: RunState, attempt: u32, secs: i64) -> RunStatusChange {
        RunStatusChange {
            run_id: run.id,
            evaluation_id: run.evaluation_id,
            attempt,
            state,
            reason: None,
            exit_code: None,
            at: at(secs),
        }
    }

    #[test]
    fn every_pair_of_states_follows_the_transition_table() {
        for from in RunState::ALL {
            for to in RunState::ALL {
                let mut snapshot = run(from, 1);
                let report = change(&snapshot, to, 1, 10);
                let outcome = apply_status(&mut snapshot, &report);
                if from == to {
                    // The same state (and, for scheduling, the same reason) is a repeat.
                    assert_eq!(outcome, StatusOutcome::Unchanged, "{from} -> {to}");
                } else if from.can_transition_to(to) {
                    assert!(
                        matches!(outcome, StatusOutcome::Changed { from: f, .. } if f == from),
                        "{from} -> {to}: {outcome:?}"
                    );
                    assert_eq!(snapshot.state, to);
                } else {
                    assert!(
                        matches!(outcome, StatusOutcome::Rejected(_)),
                        "{from} -> {to}: {outcome:?}"
                    );
                    assert_eq!(snapshot.state, from, "a rejected report changes nothing");
                }
            }
        }
    }

    #[test]
    fn the_first_running_sets_the_start_and_an_end_sets_the_finish() {
        let mut snapshot = run(RunState::Starting, 1);
        let report = change(&snapshot, RunState::Running, 1, 5);
        assert_eq!(
            apply_status(&mut snapshot, &report),
            StatusOutcome::Changed {
                from: RunState::Starting,
                started: true
            }
        );
        assert_eq!(snapshot.started_at, Some(at(5)));
        let mut done = change(&snapshot, RunState::Failed, 1, 9);
        done.exit_code = Some(3);
        apply_status(&mut snapshot, &done);
        assert_eq!(
            (snapshot.finished_at, snapshot.exit_code),
            (Some(at(9)), Some(3))
        );
    }

    #[test]
    fn a_new_reason_while_scheduling_is_a_change_and_a_repeat_is_not() {
        let mut snapshot = run(RunState::Scheduling, 1);
        let mut waiting = change(&snapshot, RunState::Scheduling, 1, 1);
        waiting.reason = Some("team quota reached: 4 of 4".into());
        assert!(matches!(
            apply_status(&mut snapshot, &waiting),
            StatusOutcome::Changed { .. }
        ));
        assert_eq!(
            apply_status(&mut snapshot, &waiting),
            StatusOutcome::Unchanged
        );
    }

    #[test]
    fn attempts_older_are_rejected_and_newer_restart_the_path_unless_ended() {
        let mut snapshot = run(RunState::Running, 2);
        let old = change(&snapshot, RunState::Succeeded, 1, 3);
        assert!(matches!(
            apply_status(&mut snapshot, &old),
            StatusOutcome::Rejected(_)
        ));
        let mut retry = change(&snapshot, RunState::Scheduling, 3, 4);
        retry.reason = Some("retrying".into());
        assert!(matches!(
            apply_status(&mut snapshot, &retry),
            StatusOutcome::Changed {
                from: RunState::Running,
                ..
            }
        ));
        assert_eq!(
            (snapshot.attempt, snapshot.state),
            (3, RunState::Scheduling)
        );
        let cancelled = change(&snapshot, RunState::Cancelled, 4, 5);
        assert!(
            matches!(
                apply_status(&mut snapshot, &cancelled),
                StatusOutcome::Changed { .. }
            ),
            "a newer attempt may be cancelled before it starts"
        );
        let after_end = change(&snapshot, RunState::Scheduling, 5, 6);
        assert!(
            matches!(
                apply_status(&mut snapshot, &after_end),
                StatusOutcome::Rejected(_)
            ),
            "nothing restarts an ended run"
        );
        let mut fresh = run(RunState::Running, 1);
        let jump = change(&fresh, RunState::Succeeded, 2, 7);
        assert!(
            matches!(apply_status(&mut fresh, &jump), StatusOutcome::Rejected(_)),
            "a new attempt cannot begin finished"
        );
    }
}

//! Wire messages between services. Each is a serde-tagged enum whose variants carry a
//! version in their tag (`run_requested.v1`); a new version is a new variant, and
//! consumers keep reading the old ones until no producer sends them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::event::{EventBody, WorkerEvent};
use crate::ids::{EvaluationId, RunId, TeamId};
use crate::score::ScoreSummary;
use crate::spec::{EvalSpec, NetworkPolicy, Priority, Resources, Task};
use crate::state::{EvaluationStatus, RunState, StateCounts};

/// Gateway -> orchestrator: start this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RunRequest {
    #[serde(rename = "run_requested.v1")]
    V1(RunRequested),
}

/// Everything the orchestrator needs to run one attempt, without reading the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequested {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub team_id: TeamId,
    pub attempt: u32,
    pub task_id: String,
    pub epoch: u32,
    pub priority: Priority,
    pub submitted_at: DateTime<Utc>,
    pub image: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub resources: Resources,
    pub timeout_secs: u64,
    pub network: NetworkPolicy,
    pub input: serde_json::Value,
    /// Not to be started before this time (a retry's backoff); absent: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

/// Which run of which evaluation of which team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOwner {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub team_id: TeamId,
}

impl RunRequested {
    /// The request to run `task` x `epoch` of `spec` as `attempt`.
    pub fn new(
        spec: &EvalSpec,
        owner: RunOwner,
        task: &Task,
        epoch: u32,
        attempt: u32,
        submitted_at: DateTime<Utc>,
    ) -> Self {
        Self {
            run_id: owner.run_id,
            evaluation_id: owner.evaluation_id,
            team_id: owner.team_id,
            attempt,
            task_id: task.id.clone(),
            epoch,
            priority: spec.priority,
            submitted_at,
            image: spec.image.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
            resources: spec.resources.clone(),
            timeout_secs: spec.timeout_secs(),
            network: spec.network,
            input: task.input.clone(),
            not_before: None,
        }
    }
}

/// Gateway -> orchestrator and result-processor (fan-out): control decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Control {
    #[serde(rename = "evaluation_cancelled.v1")]
    EvaluationCancelledV1 {
        evaluation_id: EvaluationId,
        team_id: TeamId,
        at: DateTime<Utc>,
    },
}

/// Orchestrator -> result-processor: what happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RunReport {
    /// Lines read from the worker's stream, in order.
    #[serde(rename = "run_events.v1")]
    EventsV1(RunEvents),
    /// The run entered a state.
    #[serde(rename = "run_status.v1")]
    StatusV1(RunStatusChange),
    /// Several reports of one run, in order: what queued up while the previous message
    /// of the run waited for the broker's confirm.
    #[serde(rename = "run_reports.v1")]
    BatchV1(RunReports),
}

/// Reports of one run, applied in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReports {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub reports: Vec<RunReport>,
}

/// One report that is not a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReportPart<'a> {
    Events(&'a RunEvents),
    Status(&'a RunStatusChange),
}

impl RunReport {
    pub fn run_id(&self) -> RunId {
        match self {
            Self::EventsV1(e) => e.run_id,
            Self::StatusV1(s) => s.run_id,
            Self::BatchV1(b) => b.run_id,
        }
    }

    pub fn evaluation_id(&self) -> EvaluationId {
        match self {
            Self::EventsV1(e) => e.evaluation_id,
            Self::StatusV1(s) => s.evaluation_id,
            Self::BatchV1(b) => b.evaluation_id,
        }
    }

    /// The reports this one stands for, in order (a batch's, flattened).
    pub fn parts(&self) -> Vec<ReportPart<'_>> {
        let mut parts = Vec::new();
        self.collect_parts(&mut parts);
        parts
    }

    fn collect_parts<'a>(&'a self, parts: &mut Vec<ReportPart<'a>>) {
        match self {
            Self::EventsV1(events) => parts.push(ReportPart::Events(events)),
            Self::StatusV1(status) => parts.push(ReportPart::Status(status)),
            Self::BatchV1(batch) => {
                for report in &batch.reports {
                    report.collect_parts(parts);
                }
            }
        }
    }

    /// One message for `reports` of one run: the report itself when there is one, else
    /// a batch. `None` when there is none.
    pub fn combine(mut reports: Vec<RunReport>) -> Option<RunReport> {
        match reports.len() {
            0 => None,
            1 => reports.pop(),
            _ => Some(Self::BatchV1(RunReports {
                run_id: reports[0].run_id(),
                evaluation_id: reports[0].evaluation_id(),
                reports,
            })),
        }
    }
}

impl ReportPart<'_> {
    pub fn run_id(&self) -> RunId {
        match self {
            Self::Events(e) => e.run_id,
            Self::Status(s) => s.run_id,
        }
    }

    pub fn evaluation_id(&self) -> EvaluationId {
        match self {
            Self::Events(e) => e.evaluation_id,
            Self::Status(s) => s.evaluation_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvents {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub attempt: u32,
    pub events: Vec<WorkerEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatusChange {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub attempt: u32,
    pub state: RunState,
    /// Why, in words a researcher understands ("capacity full: 2 of 2 running").
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub at: DateTime<Utc>,
}

/// Result-processor -> every gateway replica (fan-out): what was just committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Update {
    #[serde(rename = "evaluation_updated.v1")]
    EvaluationUpdatedV1(EvaluationUpdate),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationUpdate {
    pub evaluation_id: EvaluationId,
    pub team_id: TeamId,
    pub status: EvaluationStatus,
    pub counts: StateCounts,
    /// Runs whose row changed.
    pub runs: Vec<RunSnapshot>,
    /// Events committed, in seq order per run.
    pub events: Vec<StoredEvent>,
    /// Score aggregates that changed.
    pub scores: Vec<ScoreSummary>,
    /// When the first run left the queue.
    pub started_at: Option<DateTime<Utc>>,
    /// When the last run finished, once the evaluation has.
    pub finished_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
}

/// A run's row as committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSnapshot {
    pub id: RunId,
    pub evaluation_id: EvaluationId,
    pub task_id: String,
    pub epoch: u32,
    pub attempt: u32,
    pub state: RunState,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The latest value the run reported per score name.
    pub scores: BTreeMap<String, f64>,
    /// The seq of the run's latest event when this snapshot was taken: of two snapshots
    /// of the same run, the one with the higher seq is the newer.
    pub seq: i64,
}

/// An event as persisted, with its per-run sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub run_id: RunId,
    /// 1, 2, 3, ... per run, without gaps; (run_id, seq) is unique.
    pub seq: i64,
    pub attempt: u32,
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_versioned_tags() {
        let control = Control::EvaluationCancelledV1 {
            evaluation_id: EvaluationId::new(),
            team_id: TeamId::new(),
            at: Utc::now(),
        };
        let json = serde_json::to_value(&control).expect("serializes");
        assert_eq!(json["type"], "evaluation_cancelled.v1");
        let back: Control = serde_json::from_value(json).expect("parses");
        assert_eq!(back, control);
    }

    fn status(run_id: RunId, evaluation_id: EvaluationId, state: RunState) -> RunReport {
        RunReport::StatusV1(RunStatusChange {
            run_id,
            evaluation_id,
            attempt: 1,
            state,
            reason: None,
            exit_code: None,
            at: Utc::now(),
        })
    }

    #[test]
    fn a_batch_of_reports_travels_as_one_message_and_keeps_their_order() {
        let (run, evaluation) = (RunId::new(), EvaluationId::new());
        let events = RunReport::EventsV1(RunEvents {
            run_id: run,
            evaluation_id: evaluation,
            attempt: 1,
            events: Vec::new(),
        });
        let reports = vec![
            status(run, evaluation, RunState::Starting),
            status(run, evaluation, RunState::Running),
            events,
            status(run, evaluation, RunState::Succeeded),
        ];
        let batch = RunReport::combine(reports.clone()).expect("a batch");
        let json = serde_json::to_value(&batch).expect("serializes");
        assert_eq!(json["type"], "run_reports.v1");
        assert_eq!(json["reports"][1]["type"], "run_status.v1");
        let back: RunReport = serde_json::from_value(json).expect("parses");
        assert_eq!(back.run_id(), run);
        assert_eq!(back.evaluation_id(), evaluation);
        let states: Vec<Option<RunState>> = back
            .parts()
            .iter()
            .map(|part| match part {
                ReportPart::Status(s) => Some(s.state),
                ReportPart::Events(_) => None,
            })
            .collect();
        assert_eq!(
            states,
            [
                Some(RunState::Starting),
                Some(RunState::Running),
                None,
                Some(RunState::Succeeded)
            ]
        );
        // A single report is sent as itself, as before batches existed.
        let one = RunReport::combine(vec![reports[0].clone()]).expect("one");
        assert_eq!(one, reports[0]);
        assert_eq!(RunReport::combine(Vec::new()), None);
    }
}

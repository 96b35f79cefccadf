//! Applying what sandboxes report (written by the result-processor): events persisted
//! idempotently, run state transitions checked against the state machine, evaluation
//! status and score aggregates kept current, all in one transaction per batch.

use airlock_core::event::EventBody;
use airlock_core::messages::{
    EvaluationUpdate, ReportPart, RunReport, RunSnapshot, RunStatusChange, StoredEvent,
};
use airlock_core::run_status::{StatusOutcome, apply_status};
use airlock_core::score::{Aggregate, ScoreSummary};
use airlock_core::state::StateCounts;
use airlock_core::{EvaluationId, EvaluationStatus, RunId, RunState, TeamId};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

use crate::rows::{AggregateRow, RUN_COLUMNS, RunRow, corrupt};
use crate::{Result, ResultsDb};

/// What one batch changed, and what it refused.
#[derive(Debug, Default)]
pub struct Applied {
    /// One update per evaluation touched, to publish after commit.
    pub updates: Vec<EvaluationUpdate>,
    /// Transitions the state machine refused, for the log.
    pub rejected: Vec<Rejection>,
    /// Runs that started running for the first time.
    pub started: Vec<RunTiming>,
    /// Runs that reached a final state.
    pub finished: Vec<RunTiming>,
    /// Events stored (duplicates excluded).
    pub events_stored: usize,
    /// Events ignored as already stored.
    pub duplicates: usize,
}

/// A report the batch refused, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub reason: String,
}

/// A run's milestone in this batch and how long it took to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTiming {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    /// The state the run is in now.
    pub state: RunState,
    /// For `started`: from the run's creation to its start (time in the queue). For
    /// `finished`: from its start to its end, or from its creation when it never
    /// started (cancelled in the queue, refused).
    pub seconds: f64,
}

impl RunTiming {
    fn between(run: &RunSnapshot, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self {
            run_id: run.id,
            evaluation_id: run.evaluation_id,
            state: run.state,
            seconds: ((to - from).num_microseconds().unwrap_or(0) as f64 / 1e6).max(0.0),
        }
    }
}

struct RunWork {
    /// The run's row as it will be written; `snapshot.seq` is its `last_seq`.
    snapshot: RunSnapshot,
    /// Anything to write (events, state or scores).
    changed: bool,
    /// Something clients show changed (state or scores): the run goes into the update.
    row_changed: bool,
    /// (attempt, worker seq) accepted earlier in this batch: a report and its redelivery
    /// may arrive in the same batch.
    batch_seen: HashSet<(u32, u64)>,
}

struct NewEvent {
    run_id: Uuid,
    seq: i64,
    attempt: i32,
    source_seq: Option<i64>,
    ts: DateTime<Utc>,
    body: EventBody,
}

#[derive(Default)]
struct EvaluationWork {
    deltas: BTreeMap<&'static str, i64>,
    runs: Vec<RunSnapshot>,
    events: Vec<StoredEvent>,
    scores: BTreeMap<String, Aggregate>,
}

impl ResultsDb {
    /// Applies a batch of reports in one transaction.
    #[tracing::instrument(skip_all, fields(reports = reports.len()))]
    pub async fn apply_reports(&self, reports: &[RunReport]) -> Result<Applied> {
        let mut by_run: BTreeMap<RunId, Vec<ReportPart<'_>>> = BTreeMap::new();
        for part in reports.iter().flat_map(RunReport::parts) {
            by_run.entry(part.run_id()).or_default().push(part);
        }
        let mut tx = self.pool().begin().await?;
        let mut runs = lock_runs(&mut tx, by_run.keys().copied().collect()).await?;
        let stored = stored_source_seqs(&mut tx, &by_run).await?;
        let mut applied = Applied::default();
        let mut new_events = Vec::new();
        let mut evaluations: BTreeMap<EvaluationId, EvaluationWork> = BTreeMap::new();

        for (run_id, reports) in &by_run {
            let Some(work) = runs.get_mut(run_id) else {
                if let Some(report) = reports.first() {
                    applied.rejected.push(Rejection {
                        run_id: *run_id,
                        evaluation_id: report.evaluation_id(),
                        reason: format!("run {run_id} does not exist"),
                    });
                }
                continue;
            };
            let eval = evaluations.entry(work.snapshot.evaluation_id).or_default();
            for report in reports {
                match report {
                    ReportPart::Events(batch) => {
                        let mut taken = 0;
                        for event in batch.events.iter().filter(|e| {
                            !stored.contains(&(*run_id, batch.attempt, e.seq as i64))
                                && work.batch_seen.insert((batch.attempt, e.seq))
                        }) {
                            taken += 1;
                            if let EventBody::Score { name, value } = &event.body {
                                eval.scores
                                    .entry(name.clone())
                                    .and_modify(|a| a.push(*value))
                                    .or_insert_with(|| Aggregate::of(*value));
                                work.snapshot.scores.insert(name.clone(), *value);
                                work.row_changed = true;
                            }
                            work.snapshot.seq += 1;
                            new_events.push(NewEvent {
                                run_id: run_id.as_uuid(),
                                seq: work.snapshot.seq,
                                attempt: batch.attempt as i32,
                                source_seq: Some(event.seq as i64),
                                ts: event.ts,
                                body: event.body.clone(),
                            });
                            work.changed = true;
                        }
                        applied.duplicates += batch.events.len() - taken;
                    }
                    ReportPart::Status(change) => match apply_status(&mut work.snapshot, change) {
                        StatusOutcome::Unchanged => {}
                        StatusOutcome::Rejected(reason) => applied.rejected.push(Rejection {
                            run_id: *run_id,
                            evaluation_id: work.snapshot.evaluation_id,
                            reason,
                        }),
                        StatusOutcome::Changed { from, started } => {
                            let run = &work.snapshot;
                            if let (true, Some(at)) = (started, run.started_at) {
                                applied
                                    .started
                                    .push(RunTiming::between(run, run.created_at, at));
                            }
                            if let (true, Some(at)) = (change.state.is_terminal(), run.finished_at)
                            {
                                let from = run.started_at.unwrap_or(run.created_at);
                                applied.finished.push(RunTiming::between(run, from, at));
                            }
                            *eval.deltas.entry(from.as_str()).or_default() -= 1;
                            *eval.deltas.entry(change.state.as_str()).or_default() += 1;
                            work.snapshot.seq += 1;
                            new_events.push(NewEvent {
                                run_id: run_id.as_uuid(),
                                seq: work.snapshot.seq,
                                attempt: change.attempt as i32,
                                source_seq: None,
                                ts: change.at,
                                body: EventBody::Status {
                                    state: change.state,
                                    reason: change.reason.clone(),
                                    exit_code: change.exit_code,
                                },
                            });
                            work.changed = true;
                            work.row_changed = true;
                        }
                    },
                }
            }
        }

        insert_events(&mut tx, &new_events).await?;
        update_runs(&mut tx, runs.values().filter(|w| w.changed)).await?;
        applied.events_stored = new_events.len();
        for work in runs.values().filter(|w| w.row_changed) {
            evaluations
                .entry(work.snapshot.evaluation_id)
                .or_default()
                .runs
                .push(work.snapshot.clone());
        }
        for event in new_events {
            let evaluation_id = runs[&RunId::from(event.run_id)].snapshot.evaluation_id;
            if let Some(eval) = evaluations.get_mut(&evaluation_id) {
                eval.events.push(StoredEvent {
                    run_id: event.run_id.into(),
                    seq: event.seq,
                    attempt: event.attempt as u32,
                    ts: event.ts,
                    body: event.body,
                });
            }
        }
        for (evaluation_id, work) in evaluations {
            if work.events.is_empty() && work.runs.is_empty() {
                continue;
            }
            let update = finish_evaluation(&mut tx, evaluation_id, work).await?;
            applied.updates.push(update);
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// Cancels every run of the evaluation that has not started yet.
    #[tracing::instrument(skip(self))]
    pub async fn cancel_waiting_runs(
        &self,
        evaluation_id: EvaluationId,
        at: DateTime<Utc>,
    ) -> Result<Applied> {
        let waiting: Vec<(Uuid, i32)> = sqlx::query_as(
            "SELECT id, attempt FROM runs WHERE evaluation_id = $1 AND state IN ('queued', 'scheduling')",
        )
        .bind(evaluation_id.as_uuid())
        .fetch_all(self.pool())
        .await?;
        let reports: Vec<RunReport> = waiting
            .into_iter()
            .map(|(id, attempt)| {
                RunReport::StatusV1(RunStatusChange {
                    run_id: id.into(),
                    evaluation_id,
                    attempt: attempt as u32,
                    state: RunState::Cancelled,
                    reason: Some("cancelled before it started".into()),
                    exit_code: None,
                    at,
                })
            })
            .collect();
        let mut applied = Applied::default();
        for chunk in reports.chunks(1_000) {
            let part = self.apply_reports(chunk).await?;
            applied.updates.extend(part.updates);
            applied.rejected.extend(part.rejected);
            applied.started.extend(part.started);
            applied.finished.extend(part.finished);
        }
        Ok(applied)
    }
}

async fn lock_runs(
    tx: &mut Transaction<'_, Postgres>,
    ids: Vec<RunId>,
) -> Result<HashMap<RunId, RunWork>> {
    let uuids: Vec<Uuid> = ids.iter().map(|r| r.as_uuid()).collect();
    let rows: Vec<RunRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    )))
    .bind(&uuids)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let snapshot = RunSnapshot::try_from(row)?;
        out.insert(
            snapshot.id,
            RunWork {
                snapshot,
                changed: false,
                row_changed: false,
                batch_seen: HashSet::new(),
            },
        );
    }
    Ok(out)
}

/// The (run, attempt, worker seq) of the batch's events that are stored already, in
/// one query for the whole batch: each report's events are a contiguous range of worker
/// seqs, and the range lets the (run_id, attempt, source_seq) index bound the scan.
async fn stored_source_seqs(
    tx: &mut Transaction<'_, Postgres>,
    by_run: &BTreeMap<RunId, Vec<ReportPart<'_>>>,
) -> Result<HashSet<(RunId, u32, i64)>> {
    let (mut runs, mut attempts, mut lows, mut highs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (run_id, parts) in by_run {
        for part in parts {
            let ReportPart::Events(batch) = part else {
                continue;
            };
            let seqs = batch.events.iter().map(|e| e.seq as i64);
            let (Some(low), Some(high)) = (seqs.clone().min(), seqs.max()) else {
                continue;
            };
            runs.push(run_id.as_uuid());
            attempts.push(batch.attempt as i32);
            lows.push(low);
            highs.push(high);
        }
    }
    if runs.is_empty() {
        return Ok(HashSet::new());
    }
    let stored: Vec<(Uuid, i32, i64)> = sqlx::query_as(
        "SELECT DISTINCT e.run_id, e.attempt, e.source_seq
         FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[]) AS r(run_id, attempt, low, high)
         JOIN run_events e ON e.run_id = r.run_id AND e.attempt = r.attempt
          AND e.source_seq BETWEEN r.low AND r.high",
    )
    .bind(&runs)
    .bind(&attempts)
    .bind(&lows)
    .bind(&highs)
    .fetch_all(&mut **tx)
    .await?;
    Ok(stored
        .into_iter()
        .map(|(run, attempt, seq)| (run.into(), attempt as u32, seq))
        .collect())
}

async fn insert_events(tx: &mut Transaction<'_, Postgres>, events: &[NewEvent]) -> Result<()> {
    for chunk in events.chunks(5_000) {
        let run_ids: Vec<Uuid> = chunk.iter().map(|e| e.run_id).collect();
        let seqs: Vec<i64> = chunk.iter().map(|e| e.seq).collect();
        let attempts: Vec<i32> = chunk.iter().map(|e| e.attempt).collect();
        let source_seqs: Vec<Option<i64>> = chunk.iter().map(|e| e.source_seq).collect();
        let kinds: Vec<&str> = chunk.iter().map(|e| e.body.kind()).collect();
        let ts: Vec<DateTime<Utc>> = chunk.iter().map(|e| e.ts).collect();
        let bodies = chunk
            .iter()
            .map(|e| serde_json::to_value(&e.body).map_err(corrupt))
            .collect::<Result<Vec<_>>>()?;
        sqlx::query(
            "INSERT INTO run_events (run_id, seq, attempt, source_seq, kind, ts, body)
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int4[], $4::int8[], $5::text[],
                                  $6::timestamptz[], $7::jsonb[])",
        )
        .bind(&run_ids)
        .bind(&seqs)
        .bind(&attempts)
        .bind(&source_seqs)
        .bind(&kinds)
        .bind(&ts)
        .bind(&bodies)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn update_runs(
    tx: &mut Transaction<'_, Postgres>,
    runs: impl Iterator<Item = &RunWork>,
) -> Result<()> {
    let runs: Vec<&RunWork> = runs.collect();
    if runs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = runs.iter().map(|w| w.snapshot.id.as_uuid()).collect();
    let last_seqs: Vec<i64> = runs.iter().map(|w| w.snapshot.seq).collect();
    let states: Vec<&str> = runs.iter().map(|w| w.snapshot.state.as_str()).collect();
    let reasons: Vec<Option<&str>> = runs.iter().map(|w| w.snapshot.reason.as_deref()).collect();
    let exit_codes: Vec<Option<i32>> = runs.iter().map(|w| w.snapshot.exit_code).collect();
    let started: Vec<Option<DateTime<Utc>>> = runs.iter().map(|w| w.snapshot.started_at).collect();
    let finished: Vec<Option<DateTime<Utc>>> =
        runs.iter().map(|w| w.snapshot.finished_at).collect();
    let attempts: Vec<i32> = runs.iter().map(|w| w.snapshot.attempt as i32).collect();
    let scores: Vec<Json<&BTreeMap<String, f64>>> =
        runs.iter().map(|w| Json(&w.snapshot.scores)).collect();
    sqlx::query(
        "UPDATE runs r SET last_seq = u.last_seq, state = u.state, reason = u.reason,
                exit_code = u.exit_code, started_at = u.started_at, finished_at = u.finished_at,
                attempt = u.attempt, scores = u.scores, updated_at = now()
         FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::int4[], $6::timestamptz[],
                     $7::timestamptz[], $8::int4[], $9::jsonb[])
              AS u(id, last_seq, state, reason, exit_code, started_at, finished_at, attempt, scores)
         WHERE r.id = u.id",
    )
    .bind(&ids)
    .bind(&last_seqs)
    .bind(&states)
    .bind(&reasons)
    .bind(&exit_codes)
    .bind(&started)
    .bind(&finished)
    .bind(&attempts)
    .bind(&scores)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn finish_evaluation(
    tx: &mut Transaction<'_, Postgres>,
    evaluation_id: EvaluationId,
    work: EvaluationWork,
) -> Result<EvaluationUpdate> {
    let mut row: EvaluationProgress = sqlx::query_as(
        "SELECT team_id, counts, started_at, finished_at, cancel_requested_at
         FROM evaluations WHERE id = $1 FOR UPDATE",
    )
    .bind(evaluation_id.as_uuid())
    .fetch_one(&mut **tx)
    .await?;
    let counts = &mut row.counts.0;
    for (state, delta) in &work.deltas {
        let state: RunState = state.parse().map_err(corrupt)?;
        let next = (counts.get(state) as i64 + delta).max(0) as u64;
        counts.set(state, next);
    }
    let status = EvaluationStatus::derive(counts);
    if !work.deltas.is_empty() {
        (row.started_at, row.finished_at) = sqlx::query_as(
            "UPDATE evaluations SET counts = $2, status = $3, updated_at = now(),
                    started_at = CASE WHEN $4 AND started_at IS NULL THEN now() ELSE started_at END,
                    finished_at = CASE WHEN $5 THEN COALESCE(finished_at, now()) ELSE NULL END
             WHERE id = $1
             RETURNING started_at, finished_at",
        )
        .bind(evaluation_id.as_uuid())
        .bind(Json(&*counts))
        .bind(status.as_str())
        .bind(status != EvaluationStatus::Queued)
        .bind(status.is_terminal())
        .fetch_one(&mut **tx)
        .await?;
    }
    let mut scores = Vec::with_capacity(work.scores.len());
    for (name, delta) in work.scores {
        let existing: Option<AggregateRow> = sqlx::query_as(
            "SELECT name, count, mean, m2, min, max FROM score_aggregates
             WHERE evaluation_id = $1 AND name = $2 FOR UPDATE",
        )
        .bind(evaluation_id.as_uuid())
        .bind(&name)
        .fetch_optional(&mut **tx)
        .await?;
        let mut aggregate = existing.map(|r| r.aggregate()).unwrap_or(Aggregate {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: 0.0,
            max: 0.0,
        });
        aggregate.merge(&delta);
        sqlx::query(
            "INSERT INTO score_aggregates (evaluation_id, name, count, mean, m2, min, max)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (evaluation_id, name) DO UPDATE
             SET count = $3, mean = $4, m2 = $5, min = $6, max = $7",
        )
        .bind(evaluation_id.as_uuid())
        .bind(&name)
        .bind(aggregate.count as i64)
        .bind(aggregate.mean)
        .bind(aggregate.m2)
        .bind(aggregate.min)
        .bind(aggregate.max)
        .execute(&mut **tx)
        .await?;
        scores.push(ScoreSummary::new(name, &aggregate));
    }
    Ok(EvaluationUpdate {
        evaluation_id,
        team_id: TeamId::from(row.team_id),
        status,
        counts: row.counts.0,
        runs: work.runs,
        events: work.events,
        scores,
        started_at: row.started_at,
        finished_at: row.finished_at,
        cancel_requested_at: row.cancel_requested_at,
    })
}

/// An evaluation's row as the result-processor updates it.
#[derive(sqlx::FromRow)]
struct EvaluationProgress {
    team_id: Uuid,
    counts: Json<StateCounts>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    cancel_requested_at: Option<DateTime<Utc>>,
}

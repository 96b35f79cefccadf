//! Reading a run's event stream.

use airlock_core::messages::StoredEvent;
use airlock_core::score::ScoreSummary;
use airlock_core::{EvaluationId, RunId};
use std::collections::HashMap;
use uuid::Uuid;

use crate::rows::{AggregateRow, EventRow};
use crate::{GatewayDb, Result};

impl GatewayDb {
    /// A run's events with `seq > after_seq`, in order, at most `limit`.
    #[tracing::instrument(skip(self))]
    pub async fn run_events(
        &self,
        run_id: RunId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT run_id, seq, attempt, ts, body FROM run_events
             WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(run_id.as_uuid())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// One page of an evaluation's events that a client has not seen: for each run,
    /// those after `seen[run]` (0 when absent). Pages are ordered by (run_id, seq); pass
    /// the last (run_id, seq) returned as `from` to continue.
    #[tracing::instrument(skip(self, seen))]
    pub async fn evaluation_backlog(
        &self,
        evaluation_id: EvaluationId,
        seen: &HashMap<RunId, i64>,
        from: Option<(RunId, i64)>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        let seen_runs: Vec<Uuid> = seen.keys().map(|r| r.as_uuid()).collect();
        let seen_seqs: Vec<i64> = seen.values().copied().collect();
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT ev.run_id, ev.seq, ev.attempt, ev.ts, ev.body
             FROM run_events ev
             JOIN runs r ON r.id = ev.run_id
             LEFT JOIN UNNEST($2::uuid[], $3::int8[]) AS s(run_id, seq) ON s.run_id = ev.run_id
             WHERE r.evaluation_id = $1
               AND ev.seq > COALESCE(s.seq, 0)
               AND ($4::uuid IS NULL OR (ev.run_id, ev.seq) > ($4, $5))
             ORDER BY ev.run_id, ev.seq
             LIMIT $6",
        )
        .bind(evaluation_id.as_uuid())
        .bind(&seen_runs)
        .bind(&seen_seqs)
        .bind(from.map(|(r, _)| r.as_uuid()))
        .bind(from.map(|(_, s)| s).unwrap_or(0))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Score aggregates of an evaluation, by name.
    #[tracing::instrument(skip(self))]
    pub async fn scores_of(&self, evaluation_id: EvaluationId) -> Result<Vec<ScoreSummary>> {
        let rows: Vec<AggregateRow> = sqlx::query_as(
            "SELECT name, count, mean, m2, min, max FROM score_aggregates
             WHERE evaluation_id = $1 ORDER BY name",
        )
        .bind(evaluation_id.as_uuid())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.summary()).collect())
    }

    /// The score aggregates of several evaluations, by name within each.
    #[tracing::instrument(skip_all, fields(evaluations = ids.len()))]
    pub async fn scores_of_many(
        &self,
        ids: &[EvaluationId],
    ) -> Result<HashMap<EvaluationId, Vec<ScoreSummary>>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            evaluation_id: Uuid,
            #[sqlx(flatten)]
            aggregate: AggregateRow,
        }
        let uuids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT evaluation_id, name, count, mean, m2, min, max FROM score_aggregates
             WHERE evaluation_id = ANY($1) ORDER BY evaluation_id, name",
        )
        .bind(&uuids)
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::new();
        for row in rows {
            out.entry(EvaluationId::from(row.evaluation_id))
                .or_insert_with(Vec::new)
                .push(row.aggregate.summary());
        }
        Ok(out)
    }
}

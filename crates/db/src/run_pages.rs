//! An evaluation's runs one page at a time, filtered by state and sorted by task, by
//! duration or by a score, and the values of one score (for its histogram): what a
//! client reads of a 10,000-run evaluation without loading every run.

use airlock_core::messages::RunSnapshot;
use airlock_core::{EvaluationId, RunState};
use sqlx::{AssertSqlSafe, FromRow};

use crate::rows::{RUN_COLUMNS, RunRow};
use crate::{GatewayDb, Result};

/// The order of a runs listing. Each is total: ties are broken by task then epoch, which
/// are unique within an evaluation, so a cursor continues exactly where a page ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunOrder {
    /// Task (as listed in the spec), then epoch.
    #[default]
    Task,
    /// Longest finished first; runs not finished come last.
    DurationDesc,
    /// Shortest finished first; runs not finished come last.
    DurationAsc,
    /// Highest value of this score first; runs without it come last.
    ScoreDesc(String),
    /// Lowest value of this score first; runs without it come last.
    ScoreAsc(String),
}

impl RunOrder {
    /// (the sort key as SQL over `runs`, whether it sorts descending). The key is never
    /// NULL: a run without one gets the infinity that sorts it last. A score name is
    /// bound as `$2`, never spliced into the SQL.
    fn key_sql(&self) -> (&'static str, bool) {
        match self {
            Self::Task => ("0::float8", false),
            Self::DurationDesc => (
                "COALESCE(EXTRACT(EPOCH FROM finished_at - started_at)::float8, '-Infinity')",
                true,
            ),
            Self::DurationAsc => (
                "COALESCE(EXTRACT(EPOCH FROM finished_at - started_at)::float8, 'Infinity')",
                false,
            ),
            Self::ScoreDesc(_) => ("COALESCE((scores->>$2)::float8, '-Infinity')", true),
            Self::ScoreAsc(_) => ("COALESCE((scores->>$2)::float8, 'Infinity')", false),
        }
    }

    fn score_name(&self) -> Option<&str> {
        match self {
            Self::ScoreDesc(name) | Self::ScoreAsc(name) => Some(name),
            _ => None,
        }
    }
}

/// Where a page ended: the last run's sort key, task index and epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunKey {
    pub sort_key: f64,
    pub task_index: u32,
    pub epoch: u32,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs in one of these states; every run when empty.
    pub states: Vec<RunState>,
    pub order: RunOrder,
    /// Continue after this run (from the previous page's `next`).
    pub after: Option<RunKey>,
    pub limit: i64,
}

/// One page of runs and, when more follow, where the next page starts.
#[derive(Debug, Clone)]
pub struct RunPage {
    pub runs: Vec<RunSnapshot>,
    pub next: Option<RunKey>,
}

#[derive(FromRow)]
struct RunPageRow {
    #[sqlx(flatten)]
    run: RunRow,
    task_index: i32,
    sort_key: f64,
}

impl GatewayDb {
    /// One page of an evaluation's runs (the caller checks the evaluation is visible).
    #[tracing::instrument(skip(self))]
    pub async fn runs_page(
        &self,
        evaluation_id: EvaluationId,
        filter: &RunFilter,
    ) -> Result<RunPage> {
        let (key, descending) = filter.order.key_sql();
        let (direction, after) = if descending {
            (
                "DESC",
                "(sort_key < $5 OR (sort_key = $5 AND (task_index, epoch) > ($6, $7)))",
            )
        } else {
            ("ASC", "(sort_key, task_index, epoch) > ($5, $6, $7)")
        };
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        let limit = filter.limit.max(1);
        let rows: Vec<RunPageRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT * FROM (
                 SELECT {RUN_COLUMNS}, task_index, {key} AS sort_key FROM runs
                 WHERE evaluation_id = $1 AND (cardinality($3::text[]) = 0 OR state = ANY($3))
             ) r
             WHERE ($4::bool OR {after})
             ORDER BY sort_key {direction}, task_index, epoch
             LIMIT $8"
        )))
        .bind(evaluation_id.as_uuid())
        .bind(filter.order.score_name())
        .bind(&states)
        .bind(filter.after.is_none())
        .bind(filter.after.map(|k| k.sort_key))
        .bind(filter.after.map(|k| k.task_index as i32))
        .bind(filter.after.map(|k| k.epoch as i32))
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let more = rows.len() as i64 > limit;
        let mut runs = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last = None;
        for row in rows.into_iter().take(limit as usize) {
            last = Some(RunKey {
                sort_key: row.sort_key,
                task_index: u32::try_from(row.task_index).unwrap_or(0),
                epoch: u32::try_from(row.run.epoch).unwrap_or(0),
            });
            runs.push(RunSnapshot::try_from(row.run)?);
        }
        Ok(RunPage {
            runs,
            next: if more { last } else { None },
        })
    }

    /// Every value of one score over an evaluation's runs.
    #[tracing::instrument(skip(self))]
    pub async fn score_values(&self, evaluation_id: EvaluationId, name: &str) -> Result<Vec<f64>> {
        let values: Vec<f64> = sqlx::query_scalar(
            "SELECT (scores->>$2)::float8 FROM runs
             WHERE evaluation_id = $1 AND scores ? $2 AND jsonb_typeof(scores->$2) = 'number'",
        )
        .bind(evaluation_id.as_uuid())
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        Ok(values)
    }
}

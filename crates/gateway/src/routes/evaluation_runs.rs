//! `/api/v1/evaluations/{id}/runs` and `/api/v1/evaluations/{id}/scores/{name}/histogram`:
//! an evaluation's runs one page at a time, and one score's distribution, so a client of
//! a 10,000-run evaluation never loads every run at once.

use airlock_core::histogram::histogram;
use airlock_core::messages::RunSnapshot;
use airlock_core::{ErrorCode, EvaluationId, RunState, Scope};
use airlock_db::run_pages::{RunFilter, RunKey, RunOrder};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{HistogramOut, RunListOut};
use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::routes::evaluations::visible_evaluation;

/// Runs an evaluation's own answer (and a submission's) carries before paging.
pub const FIRST_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/evaluations/{id}/runs", get(list))
        .route(
            "/api/v1/evaluations/{id}/scores/{name}/histogram",
            get(score_histogram),
        )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs in these states, comma-separated (like `failed,error,timed_out`).
    state: Option<String>,
    /// `task` (default: task, then epoch), `duration_desc`, `duration_asc` (runs not
    /// finished last), `score_desc:<name>` or `score_asc:<name>` (runs without it last).
    sort: Option<String>,
    /// From `next_cursor` of the previous page, with the same `sort`.
    cursor: Option<String>,
    /// Page size, 1 to 1000; default 100.
    limit: Option<i64>,
}

/// List an evaluation's runs, one page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/evaluations/{id}/runs",
    tag = "evaluations",
    params(("id" = String, Path, description = "Evaluation id"), RunsQuery),
    responses(
        (status = 200, description = "One page of runs", body = RunListOut),
        (status = 400, description = "Bad state, sort, cursor or limit", body = ErrorOut),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 404, description = "No such evaluation in your team", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RunListOut>> {
    caller.require(Scope::EvaluationsRead)?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(FIRST_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let order = parse_sort(query.sort.as_deref().unwrap_or("task"))?;
    let states = parse_states(query.state.as_deref().unwrap_or(""))?;
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| decode_cursor(cursor, &order))
        .transpose()?;
    let evaluation = visible_evaluation(&state, &caller, &id).await?;
    let filter = RunFilter {
        states,
        order,
        after,
        limit,
    };
    let (items, next_cursor) = page(&state, evaluation.id, &filter).await?;
    Ok(Json(RunListOut { items, next_cursor }))
}

/// One page of runs and the cursor of the next, if any.
pub(crate) async fn page(
    state: &AppState,
    evaluation_id: EvaluationId,
    filter: &RunFilter,
) -> ApiResult<(Vec<RunSnapshot>, Option<String>)> {
    let page = state.db.runs_page(evaluation_id, filter).await?;
    let next = page.next.map(|key| encode_cursor(&filter.order, key));
    Ok((page.runs, next))
}

/// The cursor continuing a task-ordered listing after the run at `task_index`, `epoch`.
pub(crate) fn task_cursor(task_index: u32, epoch: u32) -> String {
    encode_cursor(
        &RunOrder::Task,
        RunKey {
            sort_key: 0.0,
            task_index,
            epoch,
        },
    )
}

/// Read the distribution of one score over an evaluation's runs.
#[utoipa::path(
    get,
    path = "/api/v1/evaluations/{id}/scores/{name}/histogram",
    tag = "evaluations",
    params(
        ("id" = String, Path, description = "Evaluation id"),
        ("name" = String, Path, description = "Score name"),
    ),
    responses(
        (status = 200, description = "The histogram (no bins when no run reported the score)", body = HistogramOut),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 404, description = "No such evaluation in your team", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn score_histogram(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Json<HistogramOut>> {
    caller.require(Scope::EvaluationsRead)?;
    let evaluation = visible_evaluation(&state, &caller, &id).await?;
    let values = state.db.score_values(evaluation.id, &name).await?;
    Ok(Json(HistogramOut {
        name,
        count: values.len() as u64,
        bins: histogram(&values),
    }))
}

fn parse_sort(text: &str) -> ApiResult<RunOrder> {
    let score = |name: &str| {
        if name.is_empty() {
            Err(ApiError::new(
                ErrorCode::MalformedRequest,
                "a score sort names the score, like `score_desc:accuracy`",
            ))
        } else {
            Ok(name.to_owned())
        }
    };
    match text.split_once(':') {
        Some(("score_desc", name)) => Ok(RunOrder::ScoreDesc(score(name)?)),
        Some(("score_asc", name)) => Ok(RunOrder::ScoreAsc(score(name)?)),
        _ => match text {
            "task" => Ok(RunOrder::Task),
            "duration_desc" => Ok(RunOrder::DurationDesc),
            "duration_asc" => Ok(RunOrder::DurationAsc),
            other => Err(ApiError::new(
                ErrorCode::MalformedRequest,
                format!(
                    "sort `{other}` is not one of task, duration_desc, duration_asc, \
                     score_desc:<name>, score_asc:<name>"
                ),
            )),
        },
    }
}

fn sort_name(order: &RunOrder) -> String {
    match order {
        RunOrder::Task => "task".to_owned(),
        RunOrder::DurationDesc => "duration_desc".to_owned(),
        RunOrder::DurationAsc => "duration_asc".to_owned(),
        RunOrder::ScoreDesc(name) => format!("score_desc:{name}"),
        RunOrder::ScoreAsc(name) => format!("score_asc:{name}"),
    }
}

fn parse_states(text: &str) -> ApiResult<Vec<RunState>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<RunState>().map_err(|_| {
                ApiError::new(
                    ErrorCode::MalformedRequest,
                    format!("state `{s}` is not a run state"),
                )
            })
        })
        .collect()
}

/// A cursor names its sort, so one used with another sort is refused rather than
/// silently skipping runs. The key is written in Rust's shortest exact form, so it reads
/// back as the same number.
fn encode_cursor(order: &RunOrder, key: RunKey) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}|{}|{}",
        key.sort_key,
        key.task_index,
        key.epoch,
        sort_name(order)
    ))
}

fn decode_cursor(text: &str, order: &RunOrder) -> ApiResult<RunKey> {
    let bad = || {
        ApiError::new(
            ErrorCode::MalformedRequest,
            "cursor is not one this API returned for this sort",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = raw.splitn(4, '|');
    let (Some(key), Some(task), Some(epoch), Some(sort)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if sort != sort_name(order) {
        return Err(bad());
    }
    Ok(RunKey {
        sort_key: key.parse().map_err(|_| bad())?,
        task_index: task.parse().map_err(|_| bad())?,
        epoch: epoch.parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_name_their_sort() {
        for (order, sort_key) in [
            (RunOrder::Task, 0.0),
            (RunOrder::DurationDesc, f64::NEG_INFINITY),
            (RunOrder::DurationAsc, 0.1 + 0.2),
            (RunOrder::ScoreDesc("a|b".into()), -3.25),
        ] {
            let key = RunKey {
                sort_key,
                task_index: 7,
                epoch: 3,
            };
            let cursor = encode_cursor(&order, key);
            assert_eq!(decode_cursor(&cursor, &order).expect("round trip"), key);
            let other = RunOrder::ScoreAsc("a|b".into());
            assert_eq!(
                decode_cursor(&cursor, &other)
                    .map(|_| ())
                    .expect_err("another sort")
                    .code(),
                ErrorCode::MalformedRequest
            );
        }
        assert!(decode_cursor("garbage", &RunOrder::Task).is_err());
    }

    #[test]
    fn sorts_and_states_parse_or_say_why_not() {
        assert_eq!(
            parse_sort("score_desc:acc").expect("score"),
            RunOrder::ScoreDesc("acc".into())
        );
        assert_eq!(
            parse_sort("duration_asc").expect("duration"),
            RunOrder::DurationAsc
        );
        assert!(parse_sort("score_desc:").is_err());
        assert!(parse_sort("newest").is_err());
        assert_eq!(
            parse_states("failed, error,").expect("states"),
            vec![RunState::Failed, RunState::Error]
        );
        assert!(parse_states("broken").is_err());
    }
}

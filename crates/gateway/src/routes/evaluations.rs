//! `/api/v1/evaluations`: submit, list, read and cancel evaluations.

use airlock_core::messages::{Control, RunOwner, RunRequest, RunRequested, RunSnapshot};
use airlock_core::spec::{SpecError, SpecFormat};
use airlock_core::state::StateCounts;
use airlock_core::{
    ErrorCode, EvalSpec, EvaluationId, EvaluationStatus, RunId, RunState, TraceContext,
};
use airlock_db::evaluations::{EvaluationFilter, EvaluationOrder, NewEvaluation, NewRun};
use airlock_db::run_pages::RunFilter;
use airlock_db::{Evaluation, OutboxMessage};
use airlock_mq::topology;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{CancelOut, EvaluationListOut, EvaluationOut, EvaluationSummaryOut};
use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::request_context::RequestTrace;
use crate::routes::evaluation_runs::{self, FIRST_PAGE, task_cursor};
use airlock_core::Scope;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/evaluations", post(submit).get(list))
        .route("/api/v1/evaluations/{id}", get(read))
        .route("/api/v1/evaluations/{id}/cancel", post(cancel))
}

/// Submit an evaluation spec (JSON or YAML).
#[utoipa::path(
    post,
    path = "/api/v1/evaluations",
    tag = "evaluations",
    request_body(
        content(
            (EvalSpec = "application/json"),
            (EvalSpec = "application/yaml"),
        ),
        description = "The spec. Unknown fields are rejected."
    ),
    responses(
        (status = 201, description = "Accepted: stored with its runs and queued", body = EvaluationOut,
         headers(("Location" = String, description = "URL of the new evaluation"))),
        (status = 400, description = "Malformed JSON or YAML", body = ErrorOut),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 403, description = "Viewers cannot submit", body = ErrorOut),
        (status = 413, description = "Body larger than the limit", body = ErrorOut),
        (status = 415, description = "Content-Type is neither JSON nor YAML", body = ErrorOut),
        (status = 422, description = "Invalid fields, listed in details.errors", body = ErrorOut),
        (status = 503, description = "Database unavailable", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    RequestTrace(trace): RequestTrace,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, HeaderMap, Json<EvaluationOut>)> {
    caller.require(Scope::EvaluationsWrite)?;
    let format = spec_format(&headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the body is larger than {} bytes",
                    state.config.max_body_bytes
                ),
            )
        } else {
            ApiError::new(ErrorCode::MalformedRequest, "the body could not be read")
        }
    })?;
    let spec = EvalSpec::parse(&body, format).map_err(|error| match error {
        SpecError::Malformed { .. } => {
            ApiError::new(ErrorCode::MalformedRequest, error.to_string())
        }
        SpecError::Invalid(errors) => ApiError::invalid_fields(errors),
    })?;

    let id = EvaluationId::new();
    // PostgreSQL keeps microseconds; the response must match what a later read returns.
    let created_at = Utc::now().trunc_subsecs(6);
    let (runs, outbox) = plan_runs(&spec, id, caller.team_id(), created_at, trace)?;
    state
        .db
        .insert_evaluation(NewEvaluation {
            id,
            team_id: caller.team_id(),
            owner_id: caller.principal.user_id,
            spec: &spec,
            created_at,
            runs: &runs,
            outbox: &outbox,
            audit: Some(&caller.audit(
                "evaluation.submit",
                "evaluation",
                Some(id.to_string()),
                serde_json::json!({"name": spec.name, "runs": runs.len()}),
            )),
        })
        .await?;
    crate::metrics::evaluation_submitted(runs.len());
    tracing::info!(evaluation_id = %id, runs = runs.len(), user = %caller.principal.user_name, "evaluation accepted");

    // The response is built from what was just committed, without reading it back.
    let mut counts = StateCounts::default();
    counts.add(RunState::Queued, runs.len() as u64);
    let evaluation = Evaluation {
        id,
        team_id: caller.team_id(),
        owner_id: caller.principal.user_id,
        owner_name: caller.principal.user_name.clone(),
        name: spec.name.clone(),
        status: EvaluationStatus::Queued,
        counts,
        run_count: runs.len() as u32,
        cancel_requested_at: None,
        created_at,
        started_at: None,
        finished_at: None,
        spec,
    };
    // The answer carries the first page of runs, like a read; the rest are paged.
    let first_page = runs.len().min(FIRST_PAGE as usize);
    let runs_next_cursor = (runs.len() > first_page).then(|| {
        let last = &runs[first_page - 1];
        task_cursor(last.task_index, last.epoch)
    });
    let runs = runs
        .into_iter()
        .take(first_page)
        .map(|run| RunSnapshot {
            id: run.id,
            evaluation_id: id,
            task_id: run.task_id,
            epoch: run.epoch,
            attempt: 1,
            state: RunState::Queued,
            reason: None,
            exit_code: None,
            created_at,
            started_at: None,
            finished_at: None,
            scores: Default::default(),
            seq: 1,
        })
        .collect();
    let out = EvaluationOut {
        summary: EvaluationSummaryOut::from(&evaluation),
        spec: evaluation.spec,
        runs,
        runs_next_cursor,
    };
    let mut response_headers = HeaderMap::new();
    if let Ok(location) = format!("/api/v1/evaluations/{id}").parse() {
        response_headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, response_headers, Json(out)))
}

fn spec_format(headers: &HeaderMap) -> ApiResult<SpecFormat> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "" => Ok(SpecFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Ok(SpecFormat::Yaml)
        }
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type `{other}` is not supported; use application/json or application/yaml"
            ),
        )),
    }
}

/// One run per task x epoch, and the message asking the orchestrator to start it (part
/// of the submission's trace).
fn plan_runs(
    spec: &EvalSpec,
    evaluation_id: EvaluationId,
    team_id: airlock_core::TeamId,
    submitted_at: DateTime<Utc>,
    trace: TraceContext,
) -> ApiResult<(Vec<NewRun>, Vec<OutboxMessage>)> {
    let capacity = spec.run_count() as usize;
    let mut runs = Vec::with_capacity(capacity);
    let mut outbox = Vec::with_capacity(capacity);
    for (index, task) in spec.tasks.iter().enumerate() {
        for epoch in 1..=spec.epochs {
            let run_id = RunId::new();
            let owner = RunOwner {
                run_id,
                evaluation_id,
                team_id,
            };
            let request =
                RunRequest::V1(RunRequested::new(spec, owner, task, epoch, 1, submitted_at));
            let payload = serde_json::to_value(&request).map_err(ApiError::internal)?;
            outbox.push(
                OutboxMessage::new(
                    topology::RUNS_EXCHANGE,
                    topology::RUN_ROUTING_KEY,
                    spec.priority.rank(),
                    payload,
                )
                .with_trace(trace),
            );
            runs.push(NewRun {
                id: run_id,
                task_index: index as u32,
                task_id: task.id.clone(),
                epoch,
            });
        }
    }
    Ok((runs, outbox))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only evaluations in this status.
    status: Option<EvaluationStatus>,
    /// Only evaluations carrying this label, as `key=value`; repeat by separating with commas.
    label: Option<String>,
    /// Only evaluations whose name contains this text, ignoring case.
    name: Option<String>,
    /// Only evaluations submitted by the user of this name.
    owner: Option<String>,
    /// `newest` (default), `oldest`, `name_asc` or `name_desc`.
    sort: Option<SortOrder>,
    /// From `next_cursor` of the previous page, listed in the same order.
    cursor: Option<String>,
    /// Page size, 1 to 200; default 50.
    limit: Option<i64>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    #[default]
    Newest,
    Oldest,
    NameAsc,
    NameDesc,
}

impl SortOrder {
    fn order(self) -> EvaluationOrder {
        match self {
            Self::Newest => EvaluationOrder::Newest,
            Self::Oldest => EvaluationOrder::Oldest,
            Self::NameAsc => EvaluationOrder::NameAsc,
            Self::NameDesc => EvaluationOrder::NameDesc,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Oldest => "oldest",
            Self::NameAsc => "name_asc",
            Self::NameDesc => "name_desc",
        }
    }
}

/// List the team's evaluations (newest first unless `sort` says otherwise).
#[utoipa::path(
    get,
    path = "/api/v1/evaluations",
    tag = "evaluations",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = EvaluationListOut),
        (status = 400, description = "Bad filter or cursor", body = ErrorOut),
        (status = 401, description = "No valid token", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<EvaluationListOut>> {
    caller.require(Scope::EvaluationsRead)?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "limit must be between 1 and 200",
        ));
    }
    let labels = match &query.label {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| {
                        ApiError::new(ErrorCode::MalformedRequest, "label must be key=value")
                    })
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let sort = query.sort.unwrap_or_default();
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| decode_cursor(cursor, sort))
        .transpose()?;
    let nonempty = |text: &Option<String>| {
        text.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let order = sort.order();
    let evaluations = state
        .db
        .evaluations(&EvaluationFilter {
            team_id: Some(caller.team_id()),
            status: query.status,
            labels,
            name: nonempty(&query.name),
            owner: nonempty(&query.owner),
            order,
            after,
            limit: limit + 1,
        })
        .await?;
    let has_more = evaluations.len() as i64 > limit;
    let page = &evaluations[..evaluations.len().min(limit as usize)];
    let ids: Vec<EvaluationId> = page.iter().map(|e| e.id).collect();
    let mut scores = state.db.scores_of_many(&ids).await?;
    let items = page
        .iter()
        .map(|e| EvaluationSummaryOut::new(e, scores.remove(&e.id).unwrap_or_default()))
        .collect();
    let next_cursor = match page.last() {
        Some(last) if has_more => Some(encode_cursor(sort, &order.key_of(last), last.id)),
        _ => None,
    };
    Ok(Json(EvaluationListOut { items, next_cursor }))
}

/// A cursor names its order, so a cursor used with another order is refused rather
/// than silently skipping evaluations.
fn encode_cursor(sort: SortOrder, key: &str, id: EvaluationId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}|{key}", sort.as_str()))
}

fn decode_cursor(text: &str, sort: SortOrder) -> ApiResult<(String, EvaluationId)> {
    let bad = || {
        ApiError::new(
            ErrorCode::MalformedRequest,
            "cursor is not one this API returned for this sort order",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, '|');
    let (Some(order), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if order != sort.as_str() {
        return Err(bad());
    }
    if matches!(sort, SortOrder::Newest | SortOrder::Oldest)
        && DateTime::parse_from_rfc3339(key).is_err()
    {
        return Err(bad());
    }
    let id = EvaluationId::parse(id).ok_or_else(bad)?;
    Ok((key.to_owned(), id))
}

/// The evaluation with this id if the caller's team owns it; 404 otherwise, so another
/// team cannot tell whether it exists.
pub(crate) async fn visible_evaluation(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<Evaluation> {
    let id = EvaluationId::parse(id).ok_or_else(|| ApiError::not_found("evaluation"))?;
    state
        .db
        .evaluation(id, Some(caller.team_id()))
        .await?
        .ok_or_else(|| ApiError::not_found("evaluation"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Include the first page of runs (default true); `false` leaves `runs` empty, for a
    /// client that pages them from `/runs` or takes them from the stream.
    runs: Option<bool>,
}

/// Read one evaluation with its score aggregates and its first page of runs.
#[utoipa::path(
    get,
    path = "/api/v1/evaluations/{id}",
    tag = "evaluations",
    params(("id" = String, Path, description = "Evaluation id"), ReadQuery),
    responses(
        (status = 200, description = "The evaluation", body = EvaluationOut),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 404, description = "No such evaluation in your team", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<EvaluationOut>> {
    caller.require(Scope::EvaluationsRead)?;
    let Query(query) = query?;
    let evaluation = visible_evaluation(&state, &caller, &id).await?;
    let id = evaluation.id;
    let (runs, runs_next_cursor) = if query.runs.unwrap_or(true) {
        let first = RunFilter {
            limit: FIRST_PAGE,
            ..RunFilter::default()
        };
        evaluation_runs::page(&state, id, &first).await?
    } else {
        (Vec::new(), None)
    };
    let scores = state.db.scores_of(id).await?;
    Ok(Json(EvaluationOut {
        summary: EvaluationSummaryOut::new(&evaluation, scores),
        spec: evaluation.spec,
        runs,
        runs_next_cursor,
    }))
}

/// Cancel an evaluation: queued runs never start, running sandboxes are stopped.
/// Idempotent: cancelling again answers the same.
#[utoipa::path(
    post,
    path = "/api/v1/evaluations/{id}/cancel",
    tag = "evaluations",
    params(("id" = String, Path, description = "Evaluation id")),
    responses(
        (status = 202, description = "Cancellation requested (or already requested)", body = CancelOut),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 403, description = "Viewers cannot cancel", body = ErrorOut),
        (status = 404, description = "No such evaluation in your team", body = ErrorOut),
        (status = 409, description = "The evaluation already finished", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    RequestTrace(trace): RequestTrace,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<CancelOut>)> {
    let evaluation = visible_evaluation(&state, &caller, &id).await?;
    let id = evaluation.id;
    caller.require(Scope::EvaluationsCancel)?;
    if evaluation.cancel_requested_at.is_none() {
        if evaluation.status.is_terminal() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("the evaluation already finished ({})", evaluation.status),
            ));
        }
        let control = Control::EvaluationCancelledV1 {
            evaluation_id: id,
            team_id: evaluation.team_id,
            at: Utc::now(),
        };
        let payload = serde_json::to_value(&control).map_err(ApiError::internal)?;
        let message =
            OutboxMessage::new(topology::CONTROL_EXCHANGE, "", 0, payload).with_trace(trace);
        let audit = caller.audit(
            "evaluation.cancel",
            "evaluation",
            Some(id.to_string()),
            serde_json::json!({"name": evaluation.name}),
        );
        if state.db.request_cancel(id, &message, Some(&audit)).await? {
            tracing::info!(evaluation_id = %id, user = %caller.principal.user_name, "cancellation requested");
        }
    }
    let evaluation = state
        .db
        .evaluation(id, Some(caller.team_id()))
        .await?
        .ok_or_else(|| ApiError::not_found("evaluation"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CancelOut {
            id,
            status: evaluation.status,
            cancel_requested_at: evaluation.cancel_requested_at,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = EvaluationId::new();
        let at = Utc::now().to_rfc3339();
        let (key, back_id) = decode_cursor(
            &encode_cursor(SortOrder::Newest, &at, id),
            SortOrder::Newest,
        )
        .expect("round trip");
        assert_eq!((key, back_id), (at, id));
        let name = "a|b name";
        let (key, _) = decode_cursor(
            &encode_cursor(SortOrder::NameAsc, name, id),
            SortOrder::NameAsc,
        )
        .expect("names may hold the separator");
        assert_eq!(key, name);
        for (cursor, sort) in [
            ("nope".to_owned(), SortOrder::Newest),
            (
                encode_cursor(SortOrder::NameAsc, "x", id),
                SortOrder::Newest,
            ),
            (encode_cursor(SortOrder::Oldest, "x", id), SortOrder::Oldest),
        ] {
            assert_eq!(
                decode_cursor(&cursor, sort)
                    .map(|_| ())
                    .expect_err("refused")
                    .code(),
                ErrorCode::MalformedRequest
            );
        }
    }
}

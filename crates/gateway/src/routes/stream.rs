//! `GET /api/v1/evaluations/{id}/stream`: a WebSocket that sends an evaluation's
//! backlog from PostgreSQL, then its live updates, with no gap and no duplicate.
//!
//! Protocol: without `?resume=true` the server starts at once with everything so far.
//! With it, the client first sends `{"type":"resume","after_seq":{"<run id>":<seq>}}`
//! and receives only later events. Every event carries its per-run `seq`; the session
//! remembers the last seq sent per run, drops anything already sent and fetches any
//! gap from PostgreSQL before sending a later event.
//!
//! `events` narrows the events sent (all, none, or one run's, which also narrows the
//! run frames to that run) and `runs=true` puts the runs into the snapshot, so a page
//! showing a runs table needs no separate read that could miss an update.
//!
//! `GET /api/v1/stream` is the team's stream: one `evaluation` frame per change to any
//! of the team's evaluations. Its `backlog_complete` frame means "subscribed: read the
//! list now"; it is sent again when the session fell behind and frames were lost.
//!
//! Both authenticate like every request, or by offering the subprotocol
//! `bearer.<token>` beside `airlock.v1` (browsers cannot set headers on a WebSocket).

use airlock_core::messages::{EvaluationUpdate, RunSnapshot, StoredEvent};
use airlock_core::score::ScoreSummary;
use airlock_core::state::StateCounts;
use airlock_core::{ErrorCode, EvaluationId, EvaluationStatus, RunId, Scope, TeamId};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::{Caller, STREAM_PROTOCOL};
use crate::dto::EvaluationSummaryOut;
use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::routes::evaluations::visible_evaluation;

const BACKLOG_PAGE: i64 = 2_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/evaluations/{id}/stream", get(stream))
        .route("/api/v1/stream", get(team_stream))
}

/// What the server sends, one JSON text frame each.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamOut {
    /// First frame: the evaluation as it is now.
    Snapshot {
        evaluation: EvaluationSummaryOut,
        scores: Vec<ScoreSummary>,
        /// Every run in task then epoch order (only that run with `events=<run id>`);
        /// present when asked for with `runs=true`.
        #[serde(skip_serializing_if = "Option::is_none")]
        runs: Option<Vec<RunSnapshot>>,
    },
    /// One event of one run, in seq order per run.
    Event { event: StoredEvent },
    /// Everything stored before the connection has been sent; live updates follow.
    BacklogComplete,
    /// A run changed state.
    Run { run: RunSnapshot },
    /// The evaluation's status, counts or scores changed. `scores` holds only the
    /// aggregates that changed, each complete: replace those by name.
    Evaluation {
        id: EvaluationId,
        status: EvaluationStatus,
        counts: StateCounts,
        scores: Vec<ScoreSummary>,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
        cancel_requested_at: Option<DateTime<Utc>>,
    },
    /// The session cannot go on (bad resume message, server shutting down).
    Error { code: ErrorCode, message: String },
}

/// The optional first client frame.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamIn {
    /// Resume after the given seq per run id; runs not listed start from the beginning.
    Resume { after_seq: HashMap<RunId, i64> },
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Wait for a `resume` frame before sending the backlog.
    resume: Option<bool>,
    /// Which events to send: `all` (default), `none`, or a run id for that run's only
    /// (its run frames only, too).
    events: Option<String>,
    /// Put the runs into the snapshot frame.
    runs: Option<bool>,
}

/// Which events a session sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventScope {
    All,
    None,
    Run(RunId),
}

impl EventScope {
    fn includes(self, run_id: RunId) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Run(id) => id == run_id,
        }
    }

    /// Whether run frames of `run_id` are sent.
    fn shows_run(self, run_id: RunId) -> bool {
        match self {
            Self::Run(id) => id == run_id,
            Self::All | Self::None => true,
        }
    }
}

/// Watch an evaluation live (WebSocket).
#[utoipa::path(
    get,
    path = "/api/v1/evaluations/{id}/stream",
    tag = "evaluations",
    params(("id" = String, Path, description = "Evaluation id"), StreamQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are StreamOut (server) and StreamIn (client)", body = StreamOut),
        (status = 401, description = "No valid token", body = ErrorOut),
        (status = 404, description = "No such evaluation in your team", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    caller.require(Scope::EvaluationsRead)?;
    let Query(query) = query?;
    let id = visible_evaluation(&state, &caller, &id).await?.id;
    let scope = match query.events.as_deref() {
        None | Some("all") => EventScope::All,
        Some("none") => EventScope::None,
        Some(run) => {
            let not_here = || ApiError::not_found("run of this evaluation");
            let run_id = RunId::parse(run).ok_or_else(not_here)?;
            match state.db.run(run_id).await? {
                Some((run, _)) if run.evaluation_id == id => EventScope::Run(run_id),
                _ => return Err(not_here()),
            }
        }
    };
    let resume = query.resume.unwrap_or(false);
    let with_runs = query.runs.unwrap_or(false);
    Ok(upgrade
        .protocols([STREAM_PROTOCOL])
        .on_upgrade(move |socket| async move {
            crate::metrics::websocket_opened();
            let mut session = Session {
                state,
                evaluation_id: id,
                scope,
                socket,
                seen: HashMap::new(),
            };
            if let Err(error) = session.run(resume, with_runs).await {
                tracing::debug!(evaluation_id = %id, %error, "stream session ended");
            }
            crate::metrics::websocket_closed();
        }))
}

/// Watch every evaluation of the caller's team live (WebSocket).
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "evaluations",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are StreamOut: `backlog_complete`, then `evaluation` per change", body = StreamOut),
        (status = 401, description = "No valid token", body = ErrorOut),
    ),
    security(("bearer" = []))
)]
pub async fn team_stream(
    State(state): State<AppState>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    caller.require(Scope::EvaluationsRead)?;
    let team_id = caller.team_id();
    Ok(upgrade
        .protocols([STREAM_PROTOCOL])
        .on_upgrade(move |mut socket| async move {
            crate::metrics::websocket_opened();
            if let Err(error) = run_team_stream(&state, team_id, &mut socket).await {
                tracing::debug!(%error, "team stream ended");
            }
            crate::metrics::websocket_closed();
        }))
}

async fn run_team_stream(
    state: &AppState,
    team_id: TeamId,
    socket: &mut WebSocket,
) -> Result<(), SessionError> {
    let mut live = state.hub.subscribe();
    send(socket, &StreamOut::BacklogComplete).await?;
    loop {
        tokio::select! {
            update = live.recv() => match update {
                Ok(update) if update.team_id == team_id => {
                    send(socket, &evaluation_frame(&update)).await?;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => send(socket, &StreamOut::BacklogComplete).await?,
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = socket.recv() => match incoming {
                None | Some(Ok(Message::Close(_))) | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
            () = state.shutdown.cancelled() => {
                send(socket, &shutting_down()).await?;
                return Ok(());
            }
        }
    }
}

fn evaluation_frame(update: &EvaluationUpdate) -> StreamOut {
    StreamOut::Evaluation {
        id: update.evaluation_id,
        status: update.status,
        counts: update.counts.clone(),
        scores: update.scores.clone(),
        started_at: update.started_at,
        finished_at: update.finished_at,
        cancel_requested_at: update.cancel_requested_at,
    }
}

fn shutting_down() -> StreamOut {
    StreamOut::Error {
        code: ErrorCode::Unavailable,
        message: "the server is shutting down; reconnect and resume".into(),
    }
}

async fn send(socket: &mut WebSocket, message: &StreamOut) -> Result<(), SessionError> {
    let text =
        serde_json::to_string(message).map_err(|e| SessionError::Api(ApiError::internal(e)))?;
    socket.send(Message::Text(Utf8Bytes::from(text))).await?;
    Ok(())
}

struct Session {
    state: AppState,
    evaluation_id: EvaluationId,
    scope: EventScope,
    socket: WebSocket,
    /// Last seq sent per run.
    seen: HashMap<RunId, i64>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("socket: {0}")]
    Socket(#[from] axum::Error),
    #[error("{0:?}")]
    Api(ApiError),
    #[error("client went away")]
    Closed,
}

impl From<airlock_db::DbError> for SessionError {
    fn from(error: airlock_db::DbError) -> Self {
        Self::Api(error.into())
    }
}

impl Session {
    async fn run(&mut self, resume: bool, with_runs: bool) -> Result<(), SessionError> {
        // Subscribe before reading the backlog, so nothing committed in between is missed.
        let mut live = self.state.hub.subscribe();
        if resume {
            self.read_resume().await?;
        }
        let evaluation = self
            .state
            .db
            .evaluation(self.evaluation_id, None)
            .await?
            .ok_or(SessionError::Closed)?;
        let scores = self.state.db.scores_of(self.evaluation_id).await?;
        let runs = if with_runs {
            let mut runs = self.state.db.runs_of(self.evaluation_id).await?;
            runs.retain(|run| self.scope.shows_run(run.id));
            Some(runs)
        } else {
            None
        };
        self.send(&StreamOut::Snapshot {
            evaluation: EvaluationSummaryOut::new(&evaluation, scores.clone()),
            scores,
            runs,
        })
        .await?;
        self.send_backlog().await?;
        self.send(&StreamOut::BacklogComplete).await?;

        let shutdown = self.state.shutdown.clone();
        loop {
            tokio::select! {
                update = live.recv() => match update {
                    Ok(update) if update.evaluation_id == self.evaluation_id => self.forward(&update).await?,
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "stream session lagged; refilling from the database");
                        self.send_backlog().await?;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                incoming = self.socket.recv() => match incoming {
                    None | Some(Ok(Message::Close(_))) | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => {}
                },
                () = shutdown.cancelled() => {
                    self.send(&shutting_down()).await?;
                    return Ok(());
                }
            }
        }
    }

    async fn read_resume(&mut self) -> Result<(), SessionError> {
        let frame = tokio::time::timeout(Duration::from_secs(30), self.socket.recv())
            .await
            .map_err(|_| SessionError::Closed)?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            _ => return Err(SessionError::Closed),
        };
        match serde_json::from_str::<StreamIn>(&text) {
            Ok(StreamIn::Resume { after_seq }) => {
                self.seen = after_seq;
                Ok(())
            }
            Err(error) => {
                self.send(&StreamOut::Error {
                    code: ErrorCode::MalformedRequest,
                    message: format!(
                        "expected {{\"type\":\"resume\",\"after_seq\":{{...}}}}: {error}"
                    ),
                })
                .await?;
                Err(SessionError::Closed)
            }
        }
    }

    /// Sends every stored event in scope the client has not seen, page by page.
    async fn send_backlog(&mut self) -> Result<(), SessionError> {
        match self.scope {
            EventScope::None => Ok(()),
            EventScope::Run(run_id) => loop {
                let after = self.seen.get(&run_id).copied().unwrap_or(0);
                let page = self
                    .state
                    .db
                    .run_events(run_id, after, BACKLOG_PAGE)
                    .await?;
                let full = page.len() as i64 == BACKLOG_PAGE;
                for event in page {
                    self.send_event(event).await?;
                }
                if !full {
                    return Ok(());
                }
            },
            EventScope::All => {
                let mut from = None;
                loop {
                    let page = self
                        .state
                        .db
                        .evaluation_backlog(self.evaluation_id, &self.seen, from, BACKLOG_PAGE)
                        .await?;
                    let Some(last) = page.last() else {
                        return Ok(());
                    };
                    from = Some((last.run_id, last.seq));
                    let full = page.len() as i64 == BACKLOG_PAGE;
                    for event in page {
                        self.send_event(event).await?;
                    }
                    if !full {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn forward(&mut self, update: &EvaluationUpdate) -> Result<(), SessionError> {
        let scope = self.scope;
        for event in update.events.iter().filter(|e| scope.includes(e.run_id)) {
            let last = self.seen.get(&event.run_id).copied().unwrap_or(0);
            if event.seq <= last {
                continue;
            }
            if event.seq > last + 1 {
                let gap = self
                    .state
                    .db
                    .run_events(event.run_id, last, event.seq - last - 1)
                    .await?;
                for missing in gap {
                    self.send_event(missing).await?;
                }
            }
            self.send_event(event.clone()).await?;
        }
        for run in update.runs.iter().filter(|r| scope.shows_run(r.id)) {
            self.send(&StreamOut::Run { run: run.clone() }).await?;
        }
        if !update.runs.is_empty() || !update.scores.is_empty() {
            self.send(&evaluation_frame(update)).await?;
        }
        Ok(())
    }

    async fn send_event(&mut self, event: StoredEvent) -> Result<(), SessionError> {
        let last = self.seen.entry(event.run_id).or_insert(0);
        if event.seq <= *last {
            return Ok(());
        }
        *last = event.seq;
        self.send(&StreamOut::Event { event }).await
    }

    async fn send(&mut self, message: &StreamOut) -> Result<(), SessionError> {
        send(&mut self.socket, message).await
    }
}

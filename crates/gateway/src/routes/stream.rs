//! `GET /api/v1/evaluations/{id}/stream`: a WebSocket that sends an evaluation's
//! backlog from PostgreSQL, then its live updates, with no gap and no duplicate.
//!
//! Protocol: without `?resume=true` the server starts at once with everything so far.
//! With it, the client first sends `{"type":"resume","after_seq":{"<run id>":<seq>}}`
//! and receives only later events. Every event carries its per-run `seq`; the session
//! remembers the last seq sent per run, drops anything already sent and fetches any
//! gap from PostgreSQL before sending a later event.

use airlock_core::messages::{EvaluationUpdate, RunSnapshot, StoredEvent};
use airlock_core::score::ScoreSummary;
use airlock_core::state::StateCounts;
use airlock_core::{ErrorCode, EvaluationId, EvaluationStatus, RunId};
use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::Caller;
use crate::dto::EvaluationSummaryOut;
use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::routes::evaluations::visible_evaluation;

const BACKLOG_PAGE: i64 = 2_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/evaluations/{id}/stream", get(stream))
}

/// What the server sends, one JSON text frame each.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamOut {
    /// First frame: the evaluation as it is now.
    Snapshot {
        evaluation: EvaluationSummaryOut,
        scores: Vec<ScoreSummary>,
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
        status: EvaluationStatus,
        counts: StateCounts,
        scores: Vec<ScoreSummary>,
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
    Query(query): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let id = visible_evaluation(&state, &caller, &id).await?.id;
    let resume = query.resume.unwrap_or(false);
    Ok(upgrade.on_upgrade(move |socket| async move {
        crate::metrics::websocket_opened();
        let mut session = Session {
            state,
            evaluation_id: id,
            socket,
            seen: HashMap::new(),
        };
        if let Err(error) = session.run(resume).await {
            tracing::debug!(evaluation_id = %id, %error, "stream session ended");
        }
        crate::metrics::websocket_closed();
    }))
}

struct Session {
    state: AppState,
    evaluation_id: EvaluationId,
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
    async fn run(&mut self, resume: bool) -> Result<(), SessionError> {
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
        self.send(&StreamOut::Snapshot {
            evaluation: EvaluationSummaryOut::from(&evaluation),
            scores,
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
                    self.send(&StreamOut::Error { code: ErrorCode::Unavailable, message: "the server is shutting down; reconnect and resume".into() }).await?;
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

    /// Sends every stored event the client has not seen, page by page.
    async fn send_backlog(&mut self) -> Result<(), SessionError> {
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

    async fn forward(&mut self, update: &EvaluationUpdate) -> Result<(), SessionError> {
        for event in &update.events {
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
        for run in &update.runs {
            self.send(&StreamOut::Run { run: run.clone() }).await?;
        }
        let scores = update.scores.clone();
        if !update.runs.is_empty() || !scores.is_empty() {
            self.send(&StreamOut::Evaluation {
                status: update.status,
                counts: update.counts.clone(),
                scores,
            })
            .await?;
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
        let text =
            serde_json::to_string(message).map_err(|e| SessionError::Api(ApiError::internal(e)))?;
        self.socket
            .send(Message::Text(Utf8Bytes::from(text)))
            .await?;
        Ok(())
    }
}

//! The gateway's REST API as the bench uses it: errors are values, never panics.

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use airlock_core::RunState;

#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: String, token: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build()?;
        Ok(Self { base, token, http })
    }

    /// POSTs a spec; returns the status and the JSON body (Null when not JSON).
    pub async fn submit(&self, spec: &Value) -> Result<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}/api/v1/evaluations", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(spec.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Submits and returns the evaluation's id and its first run's id.
    pub async fn submit_one(&self, spec: &Value) -> Result<(String, String)> {
        let (status, body) = self.submit(spec).await?;
        if status != 201 {
            bail!("submission refused with {status}: {body}");
        }
        let id = body["id"].as_str().context("no id in the reply")?;
        let run = body["runs"][0]["id"]
            .as_str()
            .context("no run in the reply")?;
        Ok((id.to_owned(), run.to_owned()))
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }

    /// Requests cancellation; a 409 (already finished) is fine.
    pub async fn cancel(&self, evaluation_id: &str) -> Result<()> {
        let response = self
            .http
            .post(format!(
                "{}/api/v1/evaluations/{evaluation_id}/cancel",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 202 && status != 409 {
            let body = response.text().await.unwrap_or_default();
            bail!("cancel {evaluation_id}: {status} {body}");
        }
        Ok(())
    }

    /// One page of a run's events after `after_seq`: the events and the next cursor.
    pub async fn events_page(&self, run_id: &str, after_seq: i64) -> Result<(Vec<Value>, i64)> {
        let page = self
            .get(&format!(
                "/api/v1/runs/{run_id}/events?after_seq={after_seq}&limit=5000"
            ))
            .await?;
        let next = page["next_after_seq"]
            .as_i64()
            .context("no next_after_seq")?;
        let events = match page {
            Value::Object(mut map) => match map.remove("events") {
                Some(Value::Array(events)) => events,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        Ok((events, next))
    }

    /// Every event of a run.
    pub async fn run_events(&self, run_id: &str) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (events, next) = self.events_page(run_id, after).await?;
            if events.is_empty() {
                return Ok(all);
            }
            all.extend(events);
            after = next;
        }
    }

    /// Polls an evaluation (every `poll`) until its status is terminal; returns it, read
    /// without its runs.
    pub async fn wait_evaluation_finished(
        &self,
        id: &str,
        limit: Duration,
        poll: Duration,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let evaluation = self
                .get(&format!("/api/v1/evaluations/{id}?runs=false"))
                .await?;
            if evaluation["status"]
                .as_str()
                .and_then(|s| s.parse::<airlock_core::EvaluationStatus>().ok())
                .is_some_and(|s| s.is_terminal())
            {
                return Ok(evaluation);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("evaluation {id} did not finish within {limit:?}");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Polls a run until its state is terminal; returns that state.
    pub async fn wait_run_finished(&self, run_id: &str, limit: Duration) -> Result<RunState> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let run = self.get(&format!("/api/v1/runs/{run_id}")).await?;
            if let Some(state) = run_state(&run["state"])
                && state.is_terminal()
            {
                return Ok(state);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("run {run_id} did not finish within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An evaluation's WebSocket stream, read frame by frame.
pub struct Stream {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Stream {
    /// The next JSON frame; None when the server closed the stream.
    pub async fn next(&mut self, limit: Duration) -> Result<Option<Value>> {
        loop {
            let frame = tokio::time::timeout(limit, self.socket.next())
                .await
                .context("no WebSocket frame within the time limit")?;
            match frame {
                Some(Ok(Message::Text(text))) => return Ok(Some(serde_json::from_str(&text)?)),
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
            }
        }
    }
}

impl Api {
    /// Opens the evaluation's stream (every event, from the start).
    pub async fn stream(&self, evaluation_id: &str) -> Result<Stream> {
        let url = format!(
            "{}/api/v1/evaluations/{evaluation_id}/stream",
            self.base.replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Stream { socket })
    }
}

pub fn run_state(value: &Value) -> Option<RunState> {
    value.as_str()?.parse().ok()
}

/// A `status` event's state, or None for other events.
pub fn status_of(event: &Value) -> Option<RunState> {
    if event["type"].as_str() != Some("status") {
        return None;
    }
    run_state(&event["state"])
}

/// An event's timestamp.
pub fn ts_of(event: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    event["ts"].as_str()?.parse().ok()
}

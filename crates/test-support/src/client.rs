//! Clients a test talks to the gateway with, as a user would: REST with a bearer token,
//! and the WebSocket stream.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::eventually;

#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// A response: status and JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        Self::reply(response).await
    }

    pub async fn post(&self, path: &str) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("POST");
        Self::reply(response).await
    }

    /// POSTs a raw body with a content type.
    pub async fn post_body(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        Self::reply(response).await
    }

    /// Submits `spec` with extra request headers (`traceparent`, `x-request-id`).
    pub async fn submit_with_headers(&self, spec: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/api/v1/evaluations", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(spec.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::reply(request.send().await.expect("POST")).await
    }

    /// Any method, with an optional JSON body.
    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        Self::reply(request.send().await.expect("request")).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Reply {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn submit(&self, spec: &Value) -> Reply {
        self.post_body("/api/v1/evaluations", "application/json", spec.to_string())
            .await
    }

    /// Submits and returns the new evaluation's id, asserting 201.
    pub async fn submit_ok(&self, spec: &Value) -> String {
        let reply = self.submit(spec).await;
        assert_eq!(reply.status, 201, "submit failed: {}", reply.body);
        reply.body["id"].as_str().expect("id").to_owned()
    }

    /// The evaluation with every run in `runs`: the first page it carries, then the rest
    /// read through the paged runs endpoint.
    pub async fn evaluation(&self, id: &str) -> Value {
        let reply = self.get(&format!("/api/v1/evaluations/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut evaluation = reply.body;
        let mut cursor = evaluation["runs_next_cursor"].as_str().map(str::to_owned);
        while let Some(after) = cursor {
            let page = self
                .get(&format!(
                    "/api/v1/evaluations/{id}/runs?limit=1000&cursor={after}"
                ))
                .await;
            assert_eq!(page.status, 200, "{}", page.body);
            if let (Some(runs), Some(more)) = (
                evaluation["runs"].as_array_mut(),
                page.body["items"].as_array(),
            ) {
                runs.extend(more.iter().cloned());
            }
            cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        }
        evaluation
    }

    /// Waits until the evaluation reaches a terminal status; returns it.
    pub async fn wait_finished(&self, id: &str, limit: Duration) -> Value {
        eventually(&format!("evaluation {id} to finish"), limit, || async {
            let evaluation = self.evaluation(id).await;
            let status = evaluation["status"].as_str().unwrap_or("");
            matches!(status, "succeeded" | "failed" | "cancelled").then_some(evaluation)
        })
        .await
    }

    /// Waits until the run is in `state`; returns the run.
    pub async fn wait_run_state(&self, run_id: &str, state: &str, limit: Duration) -> Value {
        eventually(&format!("run {run_id} to be {state}"), limit, || async {
            let run = self.get(&format!("/api/v1/runs/{run_id}")).await.body;
            (run["state"] == state).then_some(run)
        })
        .await
    }

    /// Every event of a run, following pages.
    pub async fn run_events(&self, run_id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let reply = self
                .get(&format!(
                    "/api/v1/runs/{run_id}/events?after_seq={after}&limit=5000"
                ))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page = reply.body["events"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return events;
            }
            after = reply.body["next_after_seq"]
                .as_i64()
                .expect("next_after_seq");
            events.extend(page);
        }
    }

    /// Opens the evaluation's WebSocket stream; with `resume`, sends the resume frame.
    pub async fn stream(&self, id: &str, resume: Option<&HashMap<String, i64>>) -> Stream {
        match self.try_stream(id, resume).await {
            Ok(stream) => stream,
            Err(status) => panic!("WebSocket upgrade refused with HTTP {status}"),
        }
    }

    /// Like [`Api::stream`], returning the HTTP status when the upgrade is refused.
    pub async fn try_stream(
        &self,
        id: &str,
        resume: Option<&HashMap<String, i64>>,
    ) -> Result<Stream, u16> {
        let query = if resume.is_some() { "?resume=true" } else { "" };
        let mut stream = self
            .open_socket(
                &format!("/api/v1/evaluations/{id}/stream{query}"),
                SocketAuth::Header,
            )
            .await?;
        if let Some(after) = resume {
            stream
                .send_json(&serde_json::json!({"type": "resume", "after_seq": after}))
                .await;
        }
        Ok(stream)
    }

    /// Opens any of the API's WebSockets (`path` with its query), authenticated as
    /// `auth` says; returns the HTTP status when the upgrade is refused.
    pub async fn open_socket(&self, path: &str, auth: SocketAuth) -> Result<Stream, u16> {
        let ws_base = self.base.replacen("http://", "ws://", 1);
        let mut request = format!("{ws_base}{path}")
            .into_client_request()
            .expect("ws request");
        let headers = request.headers_mut();
        match auth {
            SocketAuth::Header => {
                headers.insert(
                    "authorization",
                    format!("Bearer {}", self.token).parse().expect("header"),
                );
            }
            SocketAuth::Subprotocol => {
                headers.insert(
                    "sec-websocket-protocol",
                    format!("airlock.v1, bearer.{}", self.token)
                        .parse()
                        .expect("header"),
                );
            }
            SocketAuth::Cookie { cookie, origin } => {
                headers.insert("cookie", cookie.parse().expect("header"));
                headers.insert(
                    "sec-websocket-protocol",
                    "airlock.v1".parse().expect("header"),
                );
                if let Some(origin) = origin {
                    headers.insert("origin", origin.parse().expect("header"));
                }
            }
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, response)) => Ok(Stream {
                socket,
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(error) => panic!("WebSocket connect failed: {error}"),
        }
    }
}

/// How a WebSocket upgrade carries the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAuth {
    /// `Authorization: Bearer` (programs).
    Header,
    /// The subprotocol `bearer.<token>` beside `airlock.v1` (browsers holding a token).
    Subprotocol,
    /// A browser session: the `Cookie` header, and the `Origin` a browser would send.
    Cookie {
        cookie: String,
        origin: Option<String>,
    },
}

pub struct Stream {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
}

impl Stream {
    pub async fn send_json(&mut self, frame: &Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send frame");
    }

    /// The next JSON frame, or None when the server closed the stream.
    pub async fn next(&mut self, limit: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(limit, self.socket.next())
                .await
                .expect("no WebSocket frame within the time limit");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("JSON frame"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// The `seq` of each event, in the order given.
pub fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["seq"].as_i64().expect("every event has a seq"))
        .collect()
}

/// Asserts the events are numbered `first`, `first + 1`, ... with no gap and no repeat.
pub fn assert_contiguous(events: &[Value], first: i64, what: &str) {
    let seqs = seqs(events);
    let expected: Vec<i64> = (first..first + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "{what}: seq has no gap and no repeat");
}

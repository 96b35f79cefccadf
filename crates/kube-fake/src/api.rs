//! The HTTP API: the paths, verbs and query parameters of the real API server for pods
//! (with the `status` and `log` subresources) and networkpolicies.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::ClusterState;
use crate::admission::restricted_violations;
use crate::logs::{LogQuery, key};
use crate::selector::Selector;
use crate::store::{Failure, Resource};

type Shared = Arc<ClusterState>;
type Params = Query<HashMap<String, String>>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(list_pods).post(create_pod),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(get_pod).delete(delete_pod),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/status",
            get(get_pod).put(put_pod_status).patch(patch_pod_status),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route(
            "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
            get(list_policies).post(create_policy),
        )
        .route(
            "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}",
            get(get_policy).delete(delete_policy),
        )
        .fallback(|| async {
            failure(Failure {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
            })
        })
        .layer(middleware::from_fn_with_state(state.clone(), availability))
        .with_state(state)
}

async fn availability(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if !state.store.is_available() {
        return failure(Failure {
            code: 503,
            reason: "ServiceUnavailable",
            message: "the API server is unavailable".into(),
        });
    }
    next.run(request).await
}

fn status_object(f: &Failure) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": f.message, "reason": f.reason, "code": f.code
    })
}

fn failure(f: Failure) -> Response {
    let code = StatusCode::from_u16(f.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(status_object(&f))).into_response()
}

fn ok(code: StatusCode, value: Value) -> Response {
    (code, axum::Json(value)).into_response()
}

fn parse_body(body: &Bytes) -> Result<Value, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure {
        code: 400,
        reason: "BadRequest",
        message: format!("the body of the request could not be decoded: {e}"),
    })
}

fn selector(params: &HashMap<String, String>) -> Result<Selector, Failure> {
    Selector::parse(
        params
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or(""),
    )
    .map_err(|message| Failure {
        code: 400,
        reason: "BadRequest",
        message,
    })
}

async fn list_or_watch(
    state: Shared,
    resource: Resource,
    ns: String,
    params: HashMap<String, String>,
) -> Response {
    let selector = match selector(&params) {
        Ok(s) => s,
        Err(f) => return failure(f),
    };
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return watch(state, resource, ns, selector, &params);
    }
    let version = state.store.version();
    let items: Vec<Value> = state
        .store
        .list(resource, &ns)
        .into_iter()
        .filter(|o| selector.matches(o))
        .collect();
    ok(
        StatusCode::OK,
        json!({
            "apiVersion": resource.api_version(),
            "kind": format!("{}List", resource.kind()),
            "metadata": {"resourceVersion": version.to_string()},
            "items": items,
        }),
    )
}

fn watch_line(kind: &str, object: &Value) -> String {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    line
}

/// A watch: the changes after `resourceVersion` (or every current object first when it is
/// unset or "0"), then changes as they happen, until `timeoutSeconds` or the connection
/// is dropped. A version older than the history answers an ERROR event with 410 Gone.
fn watch(
    state: Shared,
    resource: Resource,
    ns: String,
    selector: Selector,
    params: &HashMap<String, String>,
) -> Response {
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let mut initial = Vec::new();
    let start = match params.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => {
            let (objects, version) = state.store.list_all(resource);
            initial.extend(
                objects
                    .into_iter()
                    .filter(|(o_ns, o)| *o_ns == ns && selector.matches(o))
                    .map(|(_, o)| watch_line("ADDED", &o)),
            );
            version
        }
        Some(text) => match text.parse::<u64>() {
            Ok(v) => v,
            Err(_) => {
                return failure(Failure {
                    code: 400,
                    reason: "BadRequest",
                    message: format!("invalid resourceVersion {text}"),
                });
            }
        },
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let changes = state.store.subscribe();
    let mut generation = state.store.watch_generation();
    generation.borrow_and_update();
    let stream = futures_util::stream::unfold(Some(start), move |cursor| {
        let state = state.clone();
        let ns = ns.clone();
        let selector = selector.clone();
        let mut changes = changes.clone();
        let mut generation = generation.clone();
        async move {
            let cursor = cursor?;
            loop {
                if generation.has_changed().unwrap_or(true) {
                    return None;
                }
                changes.borrow_and_update();
                match state.store.changes_after(cursor) {
                    Err(compacted) => {
                        let gone = Failure {
                            code: 410,
                            reason: "Expired",
                            message: format!("too old resource version: {cursor} ({compacted})"),
                        };
                        return Some((watch_line("ERROR", &status_object(&gone)), None));
                    }
                    Ok(list) => {
                        let next = list.last().map_or(cursor, |c| c.version);
                        let lines: String = list
                            .iter()
                            .filter(|c| {
                                c.resource == resource
                                    && c.namespace == ns
                                    && selector.matches(&c.object)
                            })
                            .map(|c| watch_line(c.kind, &c.object))
                            .collect();
                        if !lines.is_empty() {
                            return Some((lines, Some(next)));
                        }
                        if next != cursor {
                            return Some((String::new(), Some(next)));
                        }
                    }
                }
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = generation.changed() => return None,
                    _ = tokio::time::sleep_until(deadline) => return None,
                }
            }
        }
    });
    let body = futures_util::stream::iter(initial)
        .chain(stream)
        .filter(|chunk| std::future::ready(!chunk.is_empty()))
        .map(Ok::<_, std::io::Error>);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn list_pods(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    Query(params): Params,
) -> Response {
    list_or_watch(state, Resource::Pods, ns, params).await
}

async fn list_policies(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    Query(params): Params,
) -> Response {
    list_or_watch(state, Resource::NetworkPolicies, ns, params).await
}

async fn create_pod(State(state): State<Shared>, Path(ns): Path<String>, body: Bytes) -> Response {
    let pod = match parse_body(&body) {
        Ok(pod) => pod,
        Err(f) => return failure(f),
    };
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let violations = restricted_violations(&pod);
    if !violations.is_empty() {
        return failure(Failure {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "pods \"{name}\" is forbidden: violates PodSecurity \"restricted:latest\": {}",
                violations.join(", ")
            ),
        });
    }
    if pod["spec"]["containers"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return failure(Failure {
            code: 422,
            reason: "Invalid",
            message: format!("Pod \"{name}\" is invalid: spec.containers: Required value"),
        });
    }
    match state.store.create(Resource::Pods, &ns, pod) {
        Ok(created) => ok(StatusCode::CREATED, created),
        Err(f) => failure(f),
    }
}

async fn create_policy(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    match parse_body(&body).and_then(|p| state.store.create(Resource::NetworkPolicies, &ns, p)) {
        Ok(created) => ok(StatusCode::CREATED, created),
        Err(f) => failure(f),
    }
}

fn get_one(state: &Shared, resource: Resource, ns: &str, name: &str) -> Response {
    match state.store.get(resource, ns, name) {
        Some(o) => ok(StatusCode::OK, o),
        None => failure(Failure::not_found(resource, name)),
    }
}

async fn get_pod(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    get_one(&state, Resource::Pods, &ns, &name)
}

async fn get_policy(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    get_one(&state, Resource::NetworkPolicies, &ns, &name)
}

/// Deletion is immediate here (the kubelet stops a running pod's processes once it is
/// gone), whatever the grace period.
async fn delete_pod(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match state.store.delete(Resource::Pods, &ns, &name) {
        Some(o) => ok(StatusCode::OK, o),
        None => failure(Failure::not_found(Resource::Pods, &name)),
    }
}

async fn delete_policy(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match state.store.delete(Resource::NetworkPolicies, &ns, &name) {
        Some(o) => ok(StatusCode::OK, o),
        None => failure(Failure::not_found(Resource::NetworkPolicies, &name)),
    }
}

async fn put_pod_status(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let pod = match parse_body(&body) {
        Ok(pod) => pod,
        Err(f) => return failure(f),
    };
    match state.store.update(Resource::Pods, &ns, &name, |o| {
        o["status"] = pod["status"].clone()
    }) {
        Some(o) => ok(StatusCode::OK, o),
        None => failure(Failure::not_found(Resource::Pods, &name)),
    }
}

async fn patch_pod_status(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let patch = match parse_body(&body) {
        Ok(patch) => patch,
        Err(f) => return failure(f),
    };
    match state.store.update(Resource::Pods, &ns, &name, |o| {
        merge_patch(&mut o["status"], &patch["status"])
    }) {
        Some(o) => ok(StatusCode::OK, o),
        None => failure(Failure::not_found(Resource::Pods, &name)),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in fields {
        if value.is_null() {
            target.as_object_mut().map(|o| o.remove(key));
        } else {
            merge_patch(&mut target[key.as_str()], value);
        }
    }
}

async fn pod_log(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    let Some(pod) = state.store.get(Resource::Pods, &ns, &name) else {
        return failure(Failure::not_found(Resource::Pods, &name));
    };
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let container = match params.get("container") {
        Some(c) => c.clone(),
        None if containers.len() == 1 => containers[0]["name"].as_str().unwrap_or("").to_owned(),
        None => {
            return failure(Failure {
                code: 400,
                reason: "BadRequest",
                message: format!("a container name must be specified for pod {name}"),
            });
        }
    };
    let log_key = key(&ns, &name, &container);
    if !state.logs.exists(&log_key) {
        return failure(Failure {
            code: 400,
            reason: "BadRequest",
            message: format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            ),
        });
    }
    let query = match LogQuery::from_params(&params) {
        Ok(query) => query,
        Err(message) => {
            return failure(Failure {
                code: 400,
                reason: "BadRequest",
                message,
            });
        }
    };
    let stream = state.logs.clone().stream(log_key, query);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

//! Named readiness checks (`postgres`, `rabbitmq`, ...), each set by the task that owns
//! the dependency. Ready means every check is up.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl Readiness {
    /// Starts with every named check down.
    pub fn new(names: &[&'static str]) -> Self {
        let checks = names.iter().map(|n| (*n, false)).collect();
        Self {
            checks: Arc::new(Mutex::new(checks)),
        }
    }

    pub fn set(&self, name: &'static str, up: bool) {
        if let Ok(mut checks) = self.checks.lock() {
            let previous = checks.insert(name, up);
            if previous != Some(up) {
                tracing::info!(dependency = name, up, "readiness changed");
            }
        }
    }

    pub fn is_up(&self, name: &str) -> bool {
        self.checks
            .lock()
            .map(|c| c.get(name).copied().unwrap_or(false))
            .unwrap_or(false)
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, bool> {
        self.checks.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn is_ready(&self) -> bool {
        self.snapshot().values().all(|up| *up)
    }
}

pub(crate) async fn handler(
    State(readiness): State<Readiness>,
) -> (StatusCode, Json<serde_json::Value>) {
    let checks = readiness.snapshot();
    let ready = checks.values().all(|up| *up);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks.iter().map(|(k, v)| (k.to_string(), if *v { "up" } else { "down" })).collect::<BTreeMap<_, _>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

impl Readiness {
    /// Runs `check` every `every` until `shutdown`, recording its answer under `name`.
    pub fn spawn_probe<F, Fut>(
        &self,
        name: &'static str,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
        check: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let readiness = self.clone();
        tokio::spawn(async move {
            loop {
                readiness.set(name, check().await);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        })
    }
}

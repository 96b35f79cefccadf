//! The measurements, one module each.

pub mod chatty;
pub mod events;
pub mod large;
pub mod latency;
pub mod submissions;

use serde_json::{Value, json};

/// A one-task evaluation running `command`.
pub fn spec(name: &str, command: &[&str], timeout: &str) -> Value {
    json!({
        "name": name,
        "image": "airlock-bench",
        "command": command,
        "resources": {"cpu": "1", "memory": "256Mi"},
        "timeout": timeout,
        "labels": {"suite": "bench"},
    })
}

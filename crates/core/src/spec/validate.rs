//! Field-by-field checking of a parsed spec document. Every problem is collected, so a
//! user fixes all of them in one round.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

use super::{
    EvalSpec, MAX_EPOCHS, MAX_RUNS, MAX_TASKS, MAX_TIMEOUT_SECS, NetworkPolicy, Priority,
    Resources, Task, parse_cpu_millis, parse_duration_secs, parse_memory_bytes,
};

const FIELDS: [&str; 11] = [
    "name",
    "image",
    "command",
    "tasks",
    "epochs",
    "resources",
    "timeout",
    "network",
    "env",
    "labels",
    "priority",
];
const MAX_GPUS: u64 = 16;
const MAX_CPU_MILLIS: u64 = 256_000;
const MAX_MEMORY_BYTES: u64 = 1 << 40;
const MIN_MEMORY_BYTES: u64 = 16 << 20;
const MAX_MAP_ENTRIES: usize = 64;
const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where, like `tasks[3].id` or `env.AIRLOCK_X`; empty for the document itself.
    pub path: String,
    /// Stable reason: `required`, `unknown_field`, `wrong_type`, `out_of_range`,
    /// `invalid_format`, `duplicate`, `reserved`, `unsupported`.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, path: &str, expected: &str) {
        self.fail(path, "wrong_type", format!("must be {expected}"));
    }

    fn string<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v str> {
        match value.as_str() {
            Some(s) => Some(s),
            None => {
                self.wrong_type(path, "a string");
                None
            }
        }
    }

    fn whole(&mut self, value: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                self.fail(
                    path,
                    "out_of_range",
                    format!("must be between {min} and {max}"),
                );
                None
            }
            None if value.is_number() => {
                self.fail(
                    path,
                    "out_of_range",
                    format!("must be a whole number between {min} and {max}"),
                );
                None
            }
            None => {
                self.wrong_type(path, "a whole number");
                None
            }
        }
    }

    fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match value.as_object() {
            Some(map) => Some(map),
            None => {
                self.wrong_type(path, "an object");
                None
            }
        }
    }

    fn unknown_fields(&mut self, map: &Map<String, Value>, known: &[&str], prefix: &str) {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.fail(
                join(prefix, key),
                "unknown_field",
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

pub(super) fn spec(value: &Value) -> Result<EvalSpec, Vec<FieldError>> {
    let mut c = Checker { errors: Vec::new() };
    let Some(doc) = c.object(value, "") else {
        return Err(c.errors);
    };
    c.unknown_fields(doc, &FIELDS, "");

    let name = required(&mut c, doc, "name").and_then(|v| name(&mut c, v));
    let image = required(&mut c, doc, "image").and_then(|v| image(&mut c, v));
    let command = required(&mut c, doc, "command").and_then(|v| command(&mut c, v));
    let tasks = match doc.get("tasks") {
        None => Some(vec![Task {
            id: "default".into(),
            input: Value::Null,
        }]),
        Some(v) => tasks(&mut c, v),
    };
    let epochs = match doc.get("epochs") {
        None => Some(1),
        Some(v) => c
            .whole(v, "epochs", 1, u64::from(MAX_EPOCHS))
            .map(|n| n as u32),
    };
    let resources = match doc.get("resources") {
        None => Some(Resources::default()),
        Some(v) => resources(&mut c, v),
    };
    let timeout = match doc.get("timeout") {
        None => Some("1h".to_owned()),
        Some(v) => timeout(&mut c, v),
    };
    let network = match doc.get("network") {
        None => Some(NetworkPolicy::None),
        Some(v) => network(&mut c, v),
    };
    let env = match doc.get("env") {
        None => Some(BTreeMap::new()),
        Some(v) => env(&mut c, v),
    };
    let labels = match doc.get("labels") {
        None => Some(BTreeMap::new()),
        Some(v) => labels(&mut c, v),
    };
    let priority = match doc.get("priority") {
        None => Some(Priority::Normal),
        Some(v) => priority(&mut c, v),
    };

    if let (Some(tasks), Some(epochs)) = (&tasks, epochs) {
        let runs = tasks.len() as u64 * u64::from(epochs);
        if runs > MAX_RUNS {
            c.fail(
                "epochs",
                "out_of_range",
                format!("tasks x epochs is {runs}; at most {MAX_RUNS} runs per evaluation"),
            );
        }
    }

    match (
        name, image, command, tasks, epochs, resources, timeout, network, env, labels, priority,
    ) {
        (
            Some(name),
            Some(image),
            Some(command),
            Some(tasks),
            Some(epochs),
            Some(resources),
            Some(timeout),
            Some(network),
            Some(env),
            Some(labels),
            Some(priority),
        ) if c.errors.is_empty() => Ok(EvalSpec {
            name,
            image,
            command,
            tasks,
            epochs,
            resources,
            timeout,
            network,
            env,
            labels,
            priority,
        }),
        _ => Err(c.errors),
    }
}

fn required<'v>(c: &mut Checker, doc: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    let value = doc.get(key);
    if value.is_none() {
        c.fail(key, "required", "is required");
    }
    value
}

fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

fn name(c: &mut Checker, value: &Value) -> Option<String> {
    let text = c.string(value, "name")?;
    let len = text.chars().count();
    if !(1..=100).contains(&len) || text.trim().is_empty() {
        c.fail("name", "out_of_range", "must be 1 to 100 characters");
        return None;
    }
    if !printable(text) {
        c.fail(
            "name",
            "invalid_format",
            "must not contain control characters",
        );
        return None;
    }
    Some(text.to_owned())
}

fn image(c: &mut Checker, value: &Value) -> Option<String> {
    let text = c.string(value, "image")?;
    if text.is_empty() || text.len() > 512 {
        c.fail("image", "out_of_range", "must be 1 to 512 characters");
        return None;
    }
    let valid = text
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || "._-/:@+".contains(ch));
    if !valid {
        c.fail(
            "image",
            "invalid_format",
            "must be an image reference like `python:3.12-slim`",
        );
        return None;
    }
    Some(text.to_owned())
}

fn command(c: &mut Checker, value: &Value) -> Option<Vec<String>> {
    let Some(items) = value.as_array() else {
        c.wrong_type("command", "a list of strings");
        return None;
    };
    if items.is_empty() {
        c.fail(
            "command",
            "out_of_range",
            "must hold at least the program to run",
        );
        return None;
    }
    if items.len() > 1_000 {
        c.fail("command", "out_of_range", "at most 1000 arguments");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("command[{i}]");
        let Some(text) = c.string(item, &path) else {
            continue;
        };
        if text.contains('\0') {
            c.fail(path, "invalid_format", "must not contain NUL characters");
        } else if i == 0 && text.is_empty() {
            c.fail(path, "out_of_range", "the program must not be empty");
        } else {
            out.push(text.to_owned());
        }
    }
    (out.len() == items.len()).then_some(out)
}

fn tasks(c: &mut Checker, value: &Value) -> Option<Vec<Task>> {
    let Some(items) = value.as_array() else {
        c.wrong_type("tasks", "a list of tasks");
        return None;
    };
    if items.is_empty() || items.len() > MAX_TASKS {
        c.fail(
            "tasks",
            "out_of_range",
            format!("must hold 1 to {MAX_TASKS} tasks"),
        );
        return None;
    }
    let before = c.errors.len();
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("tasks[{i}]");
        let Some(task) = c.object(item, &path) else {
            continue;
        };
        c.unknown_fields(task, &["id", "input"], &path);
        let id_path = format!("{path}.id");
        let Some(id) = task.get("id") else {
            c.fail(id_path, "required", "is required");
            continue;
        };
        let Some(id) = c.string(id, &id_path) else {
            continue;
        };
        if id.is_empty() || id.chars().count() > 128 || !printable(id) {
            c.fail(
                id_path,
                "invalid_format",
                "must be 1 to 128 printable characters",
            );
            continue;
        }
        if !seen.insert(id) {
            c.fail(
                id_path,
                "duplicate",
                format!("task id `{id}` appears more than once"),
            );
            continue;
        }
        out.push(Task {
            id: id.to_owned(),
            input: task.get("input").cloned().unwrap_or(Value::Null),
        });
    }
    (c.errors.len() == before).then_some(out)
}

fn resources(c: &mut Checker, value: &Value) -> Option<Resources> {
    let map = c.object(value, "resources")?;
    c.unknown_fields(map, &["cpu", "memory", "gpu"], "resources");
    let before = c.errors.len();
    let mut out = Resources::default();
    if let Some(v) = map.get("cpu") {
        // A bare number like 2 or 0.5 is accepted as well as a string.
        let text = match v {
            Value::Number(n) => Some(n.to_string()),
            _ => c.string(v, "resources.cpu").map(str::to_owned),
        };
        if let Some(text) = text {
            match parse_cpu_millis(&text) {
                Some(m) if m <= MAX_CPU_MILLIS => out.cpu = text,
                Some(_) => c.fail("resources.cpu", "out_of_range", "at most 256 cores"),
                None => c.fail(
                    "resources.cpu",
                    "invalid_format",
                    "must be cores like `2`, `0.5` or millicores like `500m`",
                ),
            }
        }
    }
    if let Some(v) = map.get("memory")
        && let Some(text) = c.string(v, "resources.memory")
    {
        match parse_memory_bytes(text) {
            Some(b) if (MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&b) => {
                out.memory = text.to_owned()
            }
            Some(_) => c.fail(
                "resources.memory",
                "out_of_range",
                "must be between 16Mi and 1Ti",
            ),
            None => c.fail(
                "resources.memory",
                "invalid_format",
                "must be bytes with a unit, like `512Mi` or `2Gi`",
            ),
        }
    }
    if let Some(v) = map.get("gpu")
        && let Some(n) = c.whole(v, "resources.gpu", 0, MAX_GPUS)
    {
        out.gpu = n as u32;
    }
    (c.errors.len() == before).then_some(out)
}

fn timeout(c: &mut Checker, value: &Value) -> Option<String> {
    let text = c.string(value, "timeout")?;
    match parse_duration_secs(text) {
        Some(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => Some(text.to_owned()),
        Some(_) => {
            c.fail("timeout", "out_of_range", "must be between 1s and 7d");
            None
        }
        None => {
            c.fail(
                "timeout",
                "invalid_format",
                "must be a duration like `90s`, `30m`, `2h` or `1h30m`",
            );
            None
        }
    }
}

fn network(c: &mut Checker, value: &Value) -> Option<NetworkPolicy> {
    match c.string(value, "network")? {
        "none" => Some(NetworkPolicy::None),
        _ => {
            c.fail("network", "unsupported", "only `none` is supported");
            None
        }
    }
}

fn priority(c: &mut Checker, value: &Value) -> Option<Priority> {
    match c.string(value, "priority")? {
        "low" => Some(Priority::Low),
        "normal" => Some(Priority::Normal),
        "high" => Some(Priority::High),
        _ => {
            c.fail(
                "priority",
                "invalid_format",
                "must be `low`, `normal` or `high`",
            );
            None
        }
    }
}

fn string_map<'v>(
    c: &mut Checker,
    value: &'v Value,
    field: &str,
) -> Option<Vec<(&'v str, &'v str)>> {
    let map = c.object(value, field)?;
    if map.len() > MAX_MAP_ENTRIES {
        c.fail(
            field,
            "out_of_range",
            format!("at most {MAX_MAP_ENTRIES} entries"),
        );
        return None;
    }
    let before = c.errors.len();
    let mut out = Vec::with_capacity(map.len());
    for (key, v) in map {
        if let Some(s) = c.string(v, &format!("{field}.{key}")) {
            out.push((key.as_str(), s));
        }
    }
    (c.errors.len() == before).then_some(out)
}

fn env(c: &mut Checker, value: &Value) -> Option<BTreeMap<String, String>> {
    let entries = string_map(c, value, "env")?;
    let before = c.errors.len();
    let mut out = BTreeMap::new();
    for (key, v) in entries {
        let path = format!("env.{key}");
        let valid_name = key
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && key
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            && key.len() <= 128;
        if !valid_name {
            c.fail(
                path,
                "invalid_format",
                "must be a variable name: letters, digits, `_`, not starting with a digit",
            );
        } else if key.to_ascii_uppercase().starts_with("AIRLOCK_") {
            c.fail(
                path,
                "reserved",
                "the AIRLOCK_ prefix is reserved for the platform",
            );
        } else if v.contains('\0') || v.len() > MAX_ENV_VALUE_BYTES {
            c.fail(
                path,
                "invalid_format",
                "must be at most 32 KiB without NUL characters",
            );
        } else {
            out.insert(key.to_owned(), v.to_owned());
        }
    }
    (c.errors.len() == before).then_some(out)
}

fn labels(c: &mut Checker, value: &Value) -> Option<BTreeMap<String, String>> {
    let entries = string_map(c, value, "labels")?;
    let before = c.errors.len();
    let mut out = BTreeMap::new();
    for (key, v) in entries {
        let path = format!("labels.{key}");
        if !label_key(key) {
            c.fail(path, "invalid_format", "must be a Kubernetes label key: an optional DNS prefix and `/`, then up to 63 of a-z, A-Z, 0-9, `-`, `_`, `.`, starting and ending alphanumeric");
        } else if !(v.is_empty() || label_name(v)) {
            c.fail(path, "invalid_format", "value must be empty or up to 63 of a-z, A-Z, 0-9, `-`, `_`, `.`, starting and ending alphanumeric");
        } else {
            out.insert(key.to_owned(), v.to_owned());
        }
    }
    (c.errors.len() == before).then_some(out)
}

/// A label name segment: 1-63 chars, alphanumeric at both ends, `-_.` inside.
fn label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

fn label_key(key: &str) -> bool {
    match key.split_once('/') {
        None => label_name(key),
        Some((prefix, name)) => dns_subdomain(prefix) && label_name(name),
    }
}

fn dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(doc: Value) -> Vec<(String, &'static str)> {
        match spec(&doc) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.path, e.code)).collect(),
        }
    }

    fn minimal() -> Value {
        json!({"name": "n", "image": "python:3.12", "command": ["python", "-c", "1"]})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut doc = minimal();
        doc[key] = value;
        doc
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec = spec(&minimal()).expect("valid");
        assert_eq!(spec.tasks.len(), 1);
        assert_eq!(spec.tasks[0].id, "default");
        assert_eq!(spec.epochs, 1);
        assert_eq!(spec.resources, Resources::default());
        assert_eq!(spec.timeout, "1h");
        assert_eq!(spec.priority, Priority::Normal);
    }

    #[test]
    fn canonical_form_round_trips() {
        let doc = json!({
            "name": "n", "image": "img", "command": ["a"],
            "tasks": [{"id": "t1", "input": {"x": 1}}, {"id": "t2"}],
            "epochs": 3, "resources": {"cpu": "500m", "memory": "512Mi", "gpu": 0},
            "timeout": "90s", "network": "none", "env": {"FOO": "bar"},
            "labels": {"team.example.com/suite": "smoke"}, "priority": "high"
        });
        let parsed = spec(&doc).expect("valid");
        let again = spec(&serde_json::to_value(&parsed).expect("serializes")).expect("valid");
        assert_eq!(parsed, again);
        assert_eq!(parsed.run_count(), 6);
        assert_eq!(parsed.timeout_secs(), 90);
    }

    #[test]
    fn every_field_error_has_its_path() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (with("name", json!("")), "name", "out_of_range"),
            (with("name", json!("x".repeat(101))), "name", "out_of_range"),
            (with("name", json!(5)), "name", "wrong_type"),
            (with("image", json!("has space")), "image", "invalid_format"),
            (with("command", json!([])), "command", "out_of_range"),
            (with("command", json!(["a", 1])), "command[1]", "wrong_type"),
            (with("tasks", json!([])), "tasks", "out_of_range"),
            (
                with("tasks", json!([{"id": "a"}, {"id": "a"}])),
                "tasks[1].id",
                "duplicate",
            ),
            (
                with("tasks", json!([{"id": "a"}, {"input": 1}])),
                "tasks[1].id",
                "required",
            ),
            (
                with("tasks", json!([{"id": "a", "extra": 1}])),
                "tasks[0].extra",
                "unknown_field",
            ),
            (with("epochs", json!(0)), "epochs", "out_of_range"),
            (with("epochs", json!(101)), "epochs", "out_of_range"),
            (with("epochs", json!(1.5)), "epochs", "out_of_range"),
            (
                with("resources", json!({"cpu": "lots"})),
                "resources.cpu",
                "invalid_format",
            ),
            (
                with("resources", json!({"memory": "1GB"})),
                "resources.memory",
                "invalid_format",
            ),
            (
                with("resources", json!({"gpu": -1})),
                "resources.gpu",
                "out_of_range",
            ),
            (
                with("resources", json!({"gpu": "2"})),
                "resources.gpu",
                "wrong_type",
            ),
            (
                with("resources", json!({"disk": "1Gi"})),
                "resources.disk",
                "unknown_field",
            ),
            (with("timeout", json!("8d")), "timeout", "out_of_range"),
            (with("timeout", json!("soon")), "timeout", "invalid_format"),
            (with("network", json!("host")), "network", "unsupported"),
            (
                with("env", json!({"AIRLOCK_X": "1"})),
                "env.AIRLOCK_X",
                "reserved",
            ),
            (
                with("env", json!({"1BAD": "1"})),
                "env.1BAD",
                "invalid_format",
            ),
            (with("env", json!({"A": 1})), "env.A", "wrong_type"),
            (
                with("labels", json!({"bad key": "v"})),
                "labels.bad key",
                "invalid_format",
            ),
            (
                with("labels", json!({"k": "-bad"})),
                "labels.k",
                "invalid_format",
            ),
            (
                with("priority", json!("urgent")),
                "priority",
                "invalid_format",
            ),
            (with("colour", json!("red")), "colour", "unknown_field"),
        ];
        for (doc, path, code) in cases {
            assert_eq!(errors(doc), vec![(path.to_owned(), code)], "{path}");
        }
    }

    #[test]
    fn missing_required_fields_are_all_reported() {
        assert_eq!(
            errors(json!({})),
            vec![
                ("name".to_owned(), "required"),
                ("image".to_owned(), "required"),
                ("command".to_owned(), "required"),
            ]
        );
        assert_eq!(errors(json!([1])), vec![(String::new(), "wrong_type")]);
    }

    #[test]
    fn too_many_runs_are_refused() {
        let tasks: Vec<Value> = (0..2000).map(|i| json!({"id": i.to_string()})).collect();
        let mut doc = with("tasks", Value::Array(tasks));
        doc["epochs"] = json!(100);
        assert_eq!(errors(doc), vec![("epochs".to_owned(), "out_of_range")]);
    }
}

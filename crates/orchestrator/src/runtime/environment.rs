//! The sandbox's environment, one contract for both runtimes: built from nothing (no
//! variable of the host or of the platform), a fixed base (`PATH`, `HOME`, `TMPDIR`,
//! `LANG`), then the spec's variables, then Airlock's own
//! ([`airlock_core::sandbox_env`]) and the operator's worker settings, which therefore
//! always win. Each name appears once. Only the paths differ between runtimes.

use airlock_core::sandbox_env as var;

use crate::runtime::SandboxRequest;

/// Where a runtime puts things inside its sandbox.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    pub path: &'a str,
    /// The writable scratch directory, the program's `HOME`.
    pub home: &'a str,
    /// The task input file.
    pub input: &'a str,
    /// The events fifo when the runtime makes it; otherwise the worker makes its own.
    pub events: Option<&'a str>,
}

/// The complete environment of the sandbox, in order.
pub fn environment(request: &SandboxRequest, layout: &Layout<'_>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", layout.path),
        ("HOME", layout.home),
        ("TMPDIR", "/tmp"),
        ("LANG", "C.UTF-8"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.extend(request.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(
        [
            (var::RUN_ID, request.run_id.to_string()),
            (var::EVALUATION_ID, request.evaluation_id.to_string()),
            (var::TASK_ID, request.task_id.clone()),
            (var::EPOCH, request.epoch.to_string()),
            (var::TASK_INPUT, layout.input.to_owned()),
        ]
        .into_iter()
        .chain(layout.events.map(|events| (var::EVENTS, events.to_owned())))
        .chain([(var::WORKER_TIMEOUT_SECS, request.timeout_secs.to_string())])
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env.extend(request.worker_env.iter().cloned());
    // Later entries win; each name is kept once, where it first appeared.
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut unique: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (name, value) in env {
        match at.get(&name) {
            Some(&index) => unique[index].1 = value,
            None => {
                at.insert(name.clone(), unique.len());
                unique.push((name, value));
            }
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::{EvaluationId, RunId, TeamId};

    #[test]
    fn airlocks_variables_win_and_each_name_appears_once() {
        let request = SandboxRequest {
            run_id: RunId::new(),
            evaluation_id: EvaluationId::new(),
            team_id: TeamId::new(),
            attempt: 1,
            task_id: "t1".into(),
            epoch: 2,
            image: "img".into(),
            command: vec!["true".into()],
            env: [
                ("HOME", "/evil"),
                ("AIRLOCK_RUN_ID", "forged"),
                ("MODEL", "small"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            resources: Default::default(),
            timeout_secs: 90,
            input: serde_json::json!({}),
            worker_env: vec![("AIRLOCK_WORKER_MAX_LINE_BYTES".into(), "10".into())],
        };
        let layout = Layout {
            path: "/bin",
            home: "/scratch",
            input: "/in.json",
            events: Some("/run/events"),
        };
        let env = environment(&request, &layout);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOME",
                "TMPDIR",
                "LANG",
                "AIRLOCK_RUN_ID",
                "MODEL",
                "AIRLOCK_EVALUATION_ID",
                "AIRLOCK_TASK_ID",
                "AIRLOCK_EPOCH",
                "AIRLOCK_TASK_INPUT",
                "AIRLOCK_EVENTS",
                "AIRLOCK_WORKER_TIMEOUT_SECS",
                "AIRLOCK_WORKER_MAX_LINE_BYTES",
            ]
        );
        let value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(value("HOME"), Some("/evil"), "the spec may set HOME");
        assert_eq!(
            value("AIRLOCK_RUN_ID"),
            Some(request.run_id.to_string().as_str())
        );
        assert_eq!(value("AIRLOCK_EPOCH"), Some("2"));
        let without_fifo = environment(
            &request,
            &Layout {
                events: None,
                ..layout
            },
        );
        assert!(without_fifo.iter().all(|(k, _)| k != "AIRLOCK_EVENTS"));
    }
}

//! Runs the built `airlock-worker` binary on small `sh -c` programs and checks the event
//! stream it writes.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airlock_core::event::{EventBody, LogStream, MAX_MESSAGE_BYTES, WorkerEvent};

const WORKER: &str = env!("CARGO_BIN_EXE_airlock-worker");

/// The worker with a clean `AIRLOCK_*` environment (the test's own may have some).
fn worker(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(WORKER);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AIRLOCK_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

struct Run {
    events: Vec<WorkerEvent>,
    code: Option<i32>,
    elapsed: Duration,
}

fn parse(stdout: &[u8]) -> Vec<WorkerEvent> {
    let text = std::str::from_utf8(stdout).expect("worker output is UTF-8");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
        .collect()
}

fn run_cmd(mut cmd: Command) -> Run {
    let started = Instant::now();
    let output = cmd.output().expect("worker runs");
    let elapsed = started.elapsed();
    let events = parse(&output.stdout);
    check_seq(&events);
    Run {
        events,
        code: output.status.code(),
        elapsed,
    }
}

fn run_sh(script: &str, env: &[(&str, &str)]) -> Run {
    run_cmd(worker(&["sh", "-c", script], env))
}

/// seq is 1, 2, 3, ... without gaps.
fn check_seq(events: &[WorkerEvent]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "seq must be contiguous from 1");
}

fn last(run: &Run) -> &EventBody {
    &run.events.last().expect("at least one event").body
}

fn logs(run: &Run, stream: LogStream) -> Vec<String> {
    run.events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Log {
                stream: s, message, ..
            } if *s == stream => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn warnings(run: &Run) -> Vec<(String, Option<u64>)> {
    run.events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Warning { message, count } => Some((message.clone(), *count)),
            _ => None,
        })
        .collect()
}

fn exit(code: i32) -> EventBody {
    EventBody::Exit {
        code: Some(code),
        signal: None,
    }
}

/// Running and not a zombie.
fn process_running(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

fn fresh_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("airlock-worker-test-{}-{n}", std::process::id()))
}

#[test]
fn stdout_and_stderr_lines_then_exit() {
    let run = run_sh(
        "echo one; echo two >&2; echo three; printf 'no newline'",
        &[],
    );
    assert_eq!(run.code, Some(0));
    assert_eq!(last(&run), &exit(0));
    assert_eq!(
        logs(&run, LogStream::Stdout),
        vec!["one", "three", "no newline"]
    );
    assert_eq!(logs(&run, LogStream::Stderr), vec!["two"]);
    assert_eq!(run.events.len(), 5);
}

#[test]
fn exit_code_and_signal_are_propagated() {
    let run = run_sh("echo failing; exit 3", &[]);
    assert_eq!(run.code, Some(3));
    assert_eq!(last(&run), &exit(3));

    let run = run_sh("kill -9 $$", &[]);
    assert_eq!(run.code, Some(128 + 9));
    assert_eq!(
        last(&run),
        &EventBody::Exit {
            code: None,
            signal: Some(9)
        }
    );
}

#[test]
fn events_file_lines_become_events() {
    let script = r#"
        echo '{"type":"score","name":"accuracy","value":0.75}' >> "$AIRLOCK_EVENTS"
        echo 'this is not json' >> "$AIRLOCK_EVENTS"
        echo '{"type":"progress","fraction":0.5,"message":"half"}' >> "$AIRLOCK_EVENTS"
        echo '{"type":"log","message":"from events"}' >> "$AIRLOCK_EVENTS"
        for i in 1 2 3 4 5; do
            echo "{\"type\":\"score\",\"name\":\"s$i\",\"value\":$i}" >> "$AIRLOCK_EVENTS"
        done
    "#;
    let run = run_sh(script, &[]);
    assert_eq!(run.code, Some(0));
    assert_eq!(last(&run), &exit(0));
    let bodies: Vec<&EventBody> = run.events.iter().map(|e| &e.body).collect();
    assert_eq!(
        bodies[0],
        &EventBody::Score {
            name: "accuracy".into(),
            value: 0.75
        }
    );
    match bodies[1] {
        EventBody::Warning {
            message,
            count: Some(1),
        } => {
            assert!(
                message.starts_with("malformed line in AIRLOCK_EVENTS: "),
                "{message}"
            );
        }
        other => panic!("expected a warning, got {other:?}"),
    }
    assert_eq!(
        bodies[2],
        &EventBody::Progress {
            fraction: 0.5,
            message: Some("half".into())
        }
    );
    assert_eq!(
        bodies[3],
        &EventBody::Log {
            stream: LogStream::Events,
            message: "from events".into(),
            truncated: false
        }
    );
    for i in 1..=5 {
        assert_eq!(
            bodies[3 + i],
            &EventBody::Score {
                name: format!("s{i}"),
                value: i as f64
            }
        );
    }
    assert_eq!(bodies.len(), 10);
}

#[test]
fn events_path_from_the_orchestrator_is_created_as_a_fifo() {
    use std::os::unix::fs::FileTypeExt;
    let dir = fresh_dir();
    let path = dir.join("missing").join("events");
    let path_str = path.to_str().expect("utf-8 temp path");
    let script = r#"
        test "$AIRLOCK_EVENTS" = "$EXPECTED" || echo "wrong path: $AIRLOCK_EVENTS"
        echo '{"type":"score","name":"x","value":1}' >> "$AIRLOCK_EVENTS"
    "#;
    let run = run_sh(
        script,
        &[("AIRLOCK_EVENTS", path_str), ("EXPECTED", path_str)],
    );
    let is_fifo = std::fs::metadata(&path).map(|m| m.file_type().is_fifo());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(is_fifo, Ok(true)), "{is_fifo:?}");
    assert_eq!(
        run.events
            .iter()
            .map(|e| e.body.clone())
            .collect::<Vec<_>>(),
        vec![
            EventBody::Score {
                name: "x".into(),
                value: 1.0
            },
            exit(0)
        ]
    );
}

#[test]
fn existing_fifo_path_is_reused_and_kept() {
    use std::os::unix::fs::FileTypeExt;
    let dir = fresh_dir();
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("events");
    let path_str = path.to_str().expect("utf-8 temp path");
    let first = run_sh(
        "echo '{\"type\":\"log\",\"message\":\"a\"}' >> \"$AIRLOCK_EVENTS\"",
        &[("AIRLOCK_EVENTS", path_str)],
    );
    let is_fifo = std::fs::metadata(&path).map(|m| m.file_type().is_fifo());
    let second = run_sh(
        "echo '{\"type\":\"log\",\"message\":\"b\"}' >> \"$AIRLOCK_EVENTS\"",
        &[("AIRLOCK_EVENTS", path_str)],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(is_fifo, Ok(true)), "{is_fifo:?}");
    assert_eq!(logs(&first, LogStream::Events), vec!["a"]);
    assert_eq!(logs(&second, LogStream::Events), vec!["b"]);
}

#[test]
fn airlock_variables_pass_through_but_worker_variables_do_not() {
    let env = [
        ("AIRLOCK_RUN_ID", "run-1"),
        ("AIRLOCK_EVALUATION_ID", "eval-2"),
        ("AIRLOCK_TASK_ID", "task-3"),
        ("AIRLOCK_EPOCH", "4"),
        ("AIRLOCK_TASK_INPUT", "/input/task.json"),
        ("AIRLOCK_WORKER_TIMEOUT_SECS", "60"),
        ("AIRLOCK_WORKER_SOMETHING_ELSE", "x"),
        ("UNRELATED_VAR", "kept"),
    ];
    let run = run_sh("env | grep -E '^(AIRLOCK_|UNRELATED_VAR)' | sort", &env);
    assert_eq!(last(&run), &exit(0));
    let lines = logs(&run, LogStream::Stdout);
    for expected in [
        "AIRLOCK_RUN_ID=run-1",
        "AIRLOCK_EVALUATION_ID=eval-2",
        "AIRLOCK_TASK_ID=task-3",
        "AIRLOCK_EPOCH=4",
        "AIRLOCK_TASK_INPUT=/input/task.json",
        "UNRELATED_VAR=kept",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected} missing from {lines:?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("AIRLOCK_EVENTS=/")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("AIRLOCK_WORKER_")),
        "{lines:?}"
    );
}

#[test]
fn time_limit_kills_the_whole_group() {
    let run = run_sh(
        "sleep 60 & echo $!; sleep 30",
        &[
            ("AIRLOCK_WORKER_TIMEOUT_SECS", "1"),
            ("AIRLOCK_WORKER_KILL_GRACE_MS", "2000"),
        ],
    );
    assert_eq!(run.code, Some(124));
    assert_eq!(last(&run), &EventBody::TimedOut { limit_secs: 1 });
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
    let pid: i32 = logs(&run, LogStream::Stdout)[0]
        .parse()
        .expect("background pid");
    assert!(!process_running(pid), "background sleep {pid} survived");
}

#[test]
fn program_ignoring_sigterm_is_killed_after_the_grace() {
    let run = run_sh(
        "trap '' TERM; echo started; while :; do sleep 1; done",
        &[
            ("AIRLOCK_WORKER_TIMEOUT_SECS", "1"),
            ("AIRLOCK_WORKER_KILL_GRACE_MS", "300"),
        ],
    );
    assert_eq!(run.code, Some(124));
    assert_eq!(last(&run), &EventBody::TimedOut { limit_secs: 1 });
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn sigterm_to_the_worker_is_forwarded() {
    let mut child = worker(&["sh", "-c", "echo ready; exec sleep 30"], &[])
        .stdout(Stdio::piped())
        .spawn()
        .expect("worker starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    let first: WorkerEvent = serde_json::from_str(&first).expect("event");
    assert!(matches!(first.body, EventBody::Log { ref message, .. } if message == "ready"));
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("rest of the stream");
    let status = child.wait().expect("worker ends");
    let events = parse(&rest);
    assert_eq!(
        events.last().map(|e| &e.body),
        Some(&EventBody::Exit {
            code: None,
            signal: Some(libc::SIGTERM)
        })
    );
    assert_eq!(events.last().map(|e| e.seq), Some(1 + events.len() as u64));
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn binary_garbage_gives_valid_events() {
    let run = run_sh(
        "head -c 100000 /dev/urandom; echo; head -c 5000 /dev/urandom >&2",
        &[],
    );
    assert_eq!(last(&run), &exit(0));
    let lines = run.events.len();
    assert!(lines > 2, "{lines} events");
    for event in &run.events {
        if let EventBody::Log { message, .. } = &event.body {
            assert!(message.len() <= MAX_MESSAGE_BYTES);
        }
    }
}

#[test]
fn long_line_is_truncated() {
    let run = run_sh("head -c 1000000 /dev/zero | tr '\\0' a", &[]);
    assert_eq!(last(&run), &exit(0));
    match &run.events[0].body {
        EventBody::Log {
            stream: LogStream::Stdout,
            message,
            truncated: true,
        } => {
            assert_eq!(message.len(), MAX_MESSAGE_BYTES);
            assert!(message.bytes().all(|b| b == b'a'));
        }
        other => panic!("expected a truncated line, got {other:?}"),
    }
    assert_eq!(run.events.len(), 2);

    let run = run_sh(
        "echo 12345678901234567890; echo short",
        &[("AIRLOCK_WORKER_MAX_LINE_BYTES", "10")],
    );
    let bodies: Vec<EventBody> = run.events.into_iter().map(|e| e.body).collect();
    assert_eq!(
        bodies,
        vec![
            EventBody::Log {
                stream: LogStream::Stdout,
                message: "1234567890".into(),
                truncated: true
            },
            EventBody::Log {
                stream: LogStream::Stdout,
                message: "short".into(),
                truncated: false
            },
            exit(0),
        ]
    );
}

#[test]
#[expect(
    clippy::zombie_processes,
    reason = "the worker is reaped with wait4 to read its rusage"
)]
fn huge_line_keeps_memory_bounded() {
    // 64 MB in one line; the worker must not hold it.
    let mut child = worker(
        &[
            "sh",
            "-c",
            "head -c 64000000 /dev/zero | tr '\\0' a; echo; echo after",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("worker starts");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).expect("read");
        out
    });
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; both pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let events = parse(&reader.join().expect("reader thread"));
    assert!(matches!(
        events[0].body,
        EventBody::Log {
            truncated: true,
            ..
        }
    ));
    assert_eq!(
        events[1].body,
        EventBody::Log {
            stream: LogStream::Stdout,
            message: "after".into(),
            truncated: false
        }
    );
    // ru_maxrss is in KiB on Linux; the worker and its small helpers stay far below 64 MB.
    assert!(
        usage.ru_maxrss < 32 * 1024,
        "max RSS {} KiB",
        usage.ru_maxrss
    );
}

/// Lines dropped, by the rate limit or for a full backlog.
fn rate_drops(run: &Run) -> u64 {
    warnings(run)
        .iter()
        .filter(|(message, _)| {
            message.starts_with("output rate limit: ")
                || message.starts_with("output backlog full: ")
        })
        .map(|(_, count)| count.expect("drop warnings carry a count"))
        .sum()
}

#[test]
fn flood_is_rate_limited_and_every_line_accounted_for() {
    let run = run_sh(
        "yes | head -n 200000",
        &[("AIRLOCK_WORKER_MAX_LINES_PER_SEC", "100")],
    );
    assert_eq!(last(&run), &exit(0));
    let emitted = logs(&run, LogStream::Stdout).len() as u64;
    let dropped = rate_drops(&run);
    assert!(dropped > 0);
    assert!(
        emitted >= 100,
        "the first second's burst is kept: {emitted}"
    );
    assert_eq!(emitted + dropped, 200_000);
}

#[test]
fn drops_are_reported_every_second_while_dropping() {
    let run = run_sh(
        "for i in 1 2 3; do yes | head -n 1000; sleep 1; done",
        &[("AIRLOCK_WORKER_MAX_LINES_PER_SEC", "10")],
    );
    assert_eq!(last(&run), &exit(0));
    let reports = warnings(&run)
        .iter()
        .filter(|(m, _)| m.starts_with("output rate limit"))
        .count();
    assert!(reports >= 2, "{reports} reports");
    assert_eq!(
        logs(&run, LogStream::Stdout).len() as u64 + rate_drops(&run),
        3000
    );
}

#[test]
fn output_byte_limit_drops_logs_but_keeps_scores() {
    let script = r#"
        for i in $(seq 1 50); do echo 0123456789; done
        echo '{"type":"score","name":"final","value":1}' >> "$AIRLOCK_EVENTS"
    "#;
    let run = run_sh(script, &[("AIRLOCK_WORKER_MAX_OUTPUT_BYTES", "100")]);
    assert_eq!(last(&run), &exit(0));
    assert_eq!(logs(&run, LogStream::Stdout).len(), 10);
    assert!(run.events.iter().any(|e| e.body
        == EventBody::Score {
            name: "final".into(),
            value: 1.0
        }));
    let warnings = warnings(&run);
    assert_eq!(
        warnings,
        vec![
            (
                "output limit of 100 bytes reached; further output is dropped".to_owned(),
                None
            ),
            (
                "output limit of 100 bytes reached: 40 lines dropped".to_owned(),
                Some(40)
            ),
        ]
    );
}

#[test]
fn detached_grandchild_does_not_hold_the_worker() {
    let run = run_sh("(setsid sleep 60 & echo $!); echo done", &[]);
    let stdout = logs(&run, LogStream::Stdout);
    if let Some(pid) = stdout.first().and_then(|p| p.parse::<i32>().ok()) {
        // SAFETY: plain kill(2) of the sleep this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert_eq!(last(&run), &exit(0));
    assert!(stdout.iter().any(|l| l == "done"), "{stdout:?}");
    assert!(
        run.elapsed < Duration::from_millis(2500),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn missing_program_gives_warning_and_127() {
    let not_executable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for program in ["/nonexistent/program", not_executable] {
        let run = run_cmd(worker(&["--", program, "arg"], &[]));
        assert_eq!(run.code, Some(127));
        assert_eq!(run.events.len(), 2);
        match &run.events[0].body {
            EventBody::Warning { message, .. } => {
                assert!(
                    message.starts_with(&format!("cannot start `{program}`: ")),
                    "{message}"
                );
            }
            other => panic!("expected a warning, got {other:?}"),
        }
        assert_eq!(last(&run), &exit(127));
    }
}

#[test]
fn bad_configuration_or_usage_exits_2_without_events() {
    let run = run_cmd(worker(
        &["true"],
        &[("AIRLOCK_WORKER_TIMEOUT_SECS", "soon")],
    ));
    assert_eq!(run.code, Some(2));
    assert!(run.events.is_empty());
    let run = run_cmd(worker(&[], &[]));
    assert_eq!(run.code, Some(2));
    assert!(run.events.is_empty());
}

#[test]
fn stream_lines_are_unique_events() {
    // Many short lines from both streams arrive exactly once each.
    let run = run_sh("seq 1 1000; seq 1001 2000 >&2", &[]);
    assert_eq!(last(&run), &exit(0));
    let mut seen = HashSet::new();
    for line in logs(&run, LogStream::Stdout)
        .into_iter()
        .chain(logs(&run, LogStream::Stderr))
    {
        assert!(seen.insert(line.parse::<u32>().expect("number")));
    }
    assert_eq!(seen.len(), 2000);
}

#[test]
fn a_fast_program_is_slowed_to_its_stream_not_cut() {
    let run = run_sh("seq 1 100000", &[("AIRLOCK_WORKER_MAX_LINES_PER_SEC", "0")]);
    assert_eq!(last(&run), &exit(0));
    let lines = logs(&run, LogStream::Stdout);
    assert_eq!(
        lines.len(),
        100_000,
        "backpressure, not drops, while the stream moves"
    );
    assert_eq!(rate_drops(&run), 0);
    assert_eq!(lines.last().map(String::as_str), Some("100000"));
}

#[test]
fn install_copies_the_worker_into_a_directory_and_the_copy_runs() {
    let dir = fresh_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let status = worker(&["--install", dir.to_str().expect("utf-8")], &[])
        .status()
        .expect("install");
    assert!(status.success());
    let installed = dir.join("airlock-worker");
    let output = Command::new(&installed)
        .args(["sh", "-c", "echo installed"])
        .stdin(Stdio::null())
        .output()
        .expect("run the installed worker");
    let events = parse(&output.stdout);
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.body, EventBody::Log { message, .. } if message == "installed"))
    );
    let missing = worker(&["--install", "/nonexistent/dir"], &[])
        .status()
        .expect("run");
    assert_eq!(missing.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

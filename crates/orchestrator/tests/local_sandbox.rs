//! End-to-end tests of the local (bubblewrap) runtime: each runs shell commands through
//! the real `airlock-worker` inside a sandbox and proves an isolation property from the
//! inside (the worker's events) and, where it matters, from the host (/proc, cgroups,
//! file ownership).
//!
//! Needs root (for the sandbox uid pool and cgroups), bubblewrap and the worker binary
//! next to this test's target directory: `cargo build -p airlock-worker`.

use airlock_core::event::{EventBody, LogStream, WorkerEvent};
use airlock_core::spec::Resources;
use airlock_core::{EvaluationId, RunId, TeamId};
use airlock_orchestrator::runtime::local::{LocalConfig, LocalRuntime};
use airlock_orchestrator::runtime::{
    Created, OutputStream, RuntimeError, SandboxExit, SandboxRequest, SandboxRuntime,
};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Upper bound for any single sandbox run in these tests.
const RUN_LIMIT: Duration = Duration::from_secs(60);
const SLOTS: u32 = 4;

/// The worker binary built next to this test binary (target/debug/airlock-worker).
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let worker = profile_dir.join("airlock-worker");
    assert!(
        worker.is_file(),
        "the worker binary {} is missing: run `cargo build -p airlock-worker` before these tests",
        worker.display()
    );
    worker
}

/// One runtime with its own state directory and its own range of sandbox uids, so tests
/// running in parallel can look for "processes of my sandboxes" on the host.
struct Harness {
    rt: LocalRuntime,
    state: PathBuf,
    uid_base: u32,
    names: Vec<String>,
}

impl Harness {
    /// `index` must be unique per test: it picks the uid range.
    fn new(index: u32) -> Self {
        Self::with(index, |_| {})
    }

    fn with(index: u32, adjust: impl FnOnce(&mut LocalConfig)) -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the local sandbox tests must run as root (sandbox uid pool and cgroups)"
        );
        let state =
            std::env::temp_dir().join(format!("airlock-local-test-{}", uuid::Uuid::new_v4()));
        let uid_base = 300_000 + index * 100;
        let mut config = LocalConfig::new(worker_binary(), &state);
        config.uid_base = uid_base;
        config.slots = SLOTS;
        config.kill_grace = Duration::from_secs(5);
        config.deadline_margin = Duration::from_secs(5);
        adjust(&mut config);
        let rt = LocalRuntime::new(config).expect("the local runtime starts");
        Self {
            rt,
            state,
            uid_base,
            names: Vec::new(),
        }
    }

    fn request(&self, script: &str) -> SandboxRequest {
        SandboxRequest {
            run_id: RunId::new(),
            evaluation_id: EvaluationId::new(),
            team_id: TeamId::new(),
            attempt: 1,
            task_id: "task-1".into(),
            epoch: 1,
            image: "local".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::new(),
            resources: Resources {
                cpu: "1".into(),
                memory: "256Mi".into(),
                gpu: 0,
            },
            timeout_secs: 30,
            input: serde_json::json!({"question": "6 x 7", "answer": 42}),
            worker_env: Vec::new(),
        }
    }

    async fn create(&mut self, request: &SandboxRequest) -> String {
        let name = request.sandbox_name();
        assert_eq!(self.rt.create(request).await.expect("create"), Created::New);
        self.names.push(name.clone());
        name
    }

    /// Starts `request` and returns its event reader.
    async fn start(&mut self, request: &SandboxRequest) -> (String, Events) {
        let name = self.create(request).await;
        let output = self.rt.output(&name).await.expect("output");
        (name, Events::new(output))
    }

    /// Runs `request` to the end: every event and the exit.
    async fn run(&mut self, request: &SandboxRequest) -> (Events, SandboxExit) {
        let (name, mut events) = self.start(request).await;
        events.read_to_end().await;
        let exit = tokio::time::timeout(RUN_LIMIT, self.rt.wait(&name))
            .await
            .expect("wait returns")
            .expect("the sandbox ends normally");
        (events, exit)
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.state.join(name).join("scratch")
    }

    fn uids(&self) -> std::ops::Range<u32> {
        self.uid_base..self.uid_base + SLOTS
    }

    /// Live processes running as one of this harness's sandbox uids.
    fn sandbox_processes(&self) -> Vec<Proc> {
        processes()
            .into_iter()
            .filter(|p| p.uids.iter().any(|u| self.uids().contains(u)))
            .collect()
    }

    /// Removes every sandbox and proves nothing is left: no directory, no cgroup, no
    /// process of the sandbox uids.
    async fn finish(mut self) {
        for name in std::mem::take(&mut self.names) {
            self.rt.remove(&name).await.expect("remove");
            self.rt.remove(&name).await.expect("remove is idempotent");
            assert!(
                !self.state.join(&name).exists(),
                "the sandbox directory of {name} is gone"
            );
            for dir in cgroup_dirs(&name) {
                assert!(!dir.exists(), "cgroup {} is removed", dir.display());
            }
        }
        let left = self.sandbox_processes();
        assert!(left.is_empty(), "no sandbox process survives: {left:?}");
        assert!(self.rt.list().await.expect("list").is_empty());
    }
}

impl Drop for Harness {
    /// After a failed test (`finish` not reached): best-effort cleanup, so a failure
    /// leaves no process or cgroup behind either.
    fn drop(&mut self) {
        for _ in 0..100 {
            let left = self.sandbox_processes();
            if left.is_empty() {
                break;
            }
            for p in left {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(p.pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for name in &self.names {
            for dir in cgroup_dirs(name) {
                for _ in 0..50 {
                    if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = fs::remove_dir_all(&self.state);
    }
}

/// Where the cgroups of sandbox `name` would be (v2 or v1).
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("airlock").join(name)];
    for controller in ["memory", "pids", "cpu"] {
        dirs.push(root.join(controller).join("airlock").join(name));
    }
    dirs
}

/// The worker's event stream, parsed line by line.
struct Events {
    lines: tokio::io::Lines<OutputStream>,
    all: Vec<WorkerEvent>,
    ended: bool,
}

impl Events {
    fn new(output: OutputStream) -> Self {
        Self {
            lines: output.lines(),
            all: Vec::new(),
            ended: false,
        }
    }

    /// The next event; `None` at the end of the stream.
    async fn next(&mut self) -> Option<WorkerEvent> {
        if self.ended {
            return None;
        }
        let line = tokio::time::timeout(RUN_LIMIT, self.lines.next_line())
            .await
            .expect("the worker writes or ends within the limit")
            .expect("the output stream reads");
        match line {
            None => {
                self.ended = true;
                None
            }
            Some(line) => {
                let event: WorkerEvent = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("the worker wrote a line that is not an event ({e}): {line}")
                });
                self.all.push(event.clone());
                Some(event)
            }
        }
    }

    /// Reads until a stdout line equal to `text`.
    async fn until_stdout(&mut self, text: &str) {
        while let Some(event) = self.next().await {
            if matches!(&event.body, EventBody::Log { stream: LogStream::Stdout, message, .. } if message == text)
            {
                return;
            }
        }
        panic!("the output ended before {text:?}; events: {:#?}", self.all);
    }

    async fn read_to_end(&mut self) {
        while self.next().await.is_some() {}
    }

    fn stream(&self, wanted: LogStream) -> Vec<String> {
        self.all
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Log {
                    stream, message, ..
                } if *stream == wanted => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    fn stdout(&self) -> Vec<String> {
        self.stream(LogStream::Stdout)
    }

    /// The stdout lines after a `prefix`, as a set (`prefix` stripped).
    fn tagged(&self, prefix: &str) -> Vec<String> {
        self.stdout()
            .iter()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .collect()
    }
}

/// A host process, from /proc/<pid>/status.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    name: String,
    uids: Vec<u32>,
    /// The pid in each nested pid namespace, outermost first.
    nspid: Vec<i32>,
}

fn processes() -> Vec<Proc> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        if field("State:").starts_with('Z') {
            continue;
        }
        found.push(Proc {
            pid,
            name: field("Name:"),
            uids: field("Uid:")
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect(),
            nspid: field("NSpid:")
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect(),
        });
    }
    found
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn runs_a_command_and_reports_its_exit_code() {
    let mut h = Harness::new(1);
    let ok = h.request(
        r#"echo hello; echo "input: $(cat "$AIRLOCK_TASK_INPUT")"; echo "pwd: $(pwd)"; exit 0"#,
    );
    let (events, exit) = h.run(&ok).await;
    assert_eq!(
        events.stdout(),
        [
            "hello",
            r#"input: {"answer":42,"question":"6 x 7"}"#,
            "pwd: /scratch"
        ]
    );
    assert_eq!(exit.code, Some(0));
    assert_eq!(exit.signal, None);
    assert!(!exit.oom_killed && !exit.stopped && !exit.deadline_exceeded);
    let seqs: Vec<u64> = events.all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "events are numbered from 1"
    );

    let failing = h.request("echo bad things >&2; exit 7");
    let (events, exit) = h.run(&failing).await;
    assert_eq!(exit.code, Some(7));
    assert!(
        events
            .stream(LogStream::Stderr)
            .contains(&"bad things".to_owned())
    );
    h.finish().await;
}

#[tokio::test]
async fn only_loopback_network() {
    let mut h = Harness::new(2);
    // A port on the host's loopback that certainly accepts connections from the host.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let own_port = listener.local_addr().expect("addr").port();
    let ports = [own_port, 5432, 5672];
    let host_connects: Vec<bool> = ports
        .iter()
        .map(|port| {
            std::net::TcpStream::connect_timeout(
                &([127, 0, 0, 1], *port).into(),
                Duration::from_secs(2),
            )
            .is_ok()
        })
        .collect();
    assert!(
        host_connects[0],
        "the host reaches its own listener on 127.0.0.1:{own_port}"
    );
    assert!(
        Path::new("/usr/bin/bash").exists() || Path::new("/bin/bash").exists(),
        "bash is needed"
    );

    let script = format!(
        r#"
        grep ':' /proc/net/dev | cut -d: -f1 | tr -d ' ' | sed 's/^/iface: /'
        for port in {} {} {} ; do
            if bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then echo "port $port: open"; else echo "port $port: closed"; fi
        done
        if bash -c 'exec 3<>/dev/tcp/1.1.1.1/53' 2>/dev/null; then echo "internet: open"; else echo "internet: closed"; fi
        "#,
        ports[0], ports[1], ports[2]
    );
    let (events, exit) = h.run(&h.request(&script)).await;
    assert_eq!(exit.code, Some(0), "{:#?}", events.all);
    assert_eq!(
        events.tagged("iface: "),
        ["lo"],
        "the only interface is loopback"
    );
    for (port, host_ok) in ports.iter().zip(&host_connects) {
        assert!(
            events.stdout().contains(&format!("port {port}: closed")),
            "127.0.0.1:{port} is unreachable from the sandbox (host: {})",
            if *host_ok {
                "reachable"
            } else {
                "not reachable"
            }
        );
        if !host_ok {
            eprintln!(
                "note: nothing listens on the host's 127.0.0.1:{port}; the own listener proves the difference"
            );
        }
    }
    assert!(events.stdout().contains(&"internet: closed".to_owned()));
    drop(listener);
    h.finish().await;
}

#[tokio::test]
async fn host_processes_are_invisible() {
    let mut h = Harness::new(3);
    let script = r#"for d in /proc/[0-9]*; do echo "proc: ${d#/proc/} $(cat $d/comm 2>/dev/null)"; done; echo "host: $(cat /proc/sys/kernel/hostname)""#;
    let (events, exit) = h.run(&h.request(script)).await;
    assert_eq!(exit.code, Some(0));
    let procs: Vec<(i32, String)> = events
        .tagged("proc: ")
        .iter()
        .map(|l| {
            let (pid, comm) = l.split_once(' ').expect("pid and name");
            (pid.parse().expect("pid"), comm.to_owned())
        })
        .collect();
    // The worker (the sandbox's init), the shell and its helpers; nothing of the host.
    assert!(
        procs.len() <= 8,
        "only the sandbox's few processes: {procs:?}"
    );
    assert!(
        procs.iter().all(|(pid, _)| *pid < 50),
        "pids start at 1 in the sandbox: {procs:?}"
    );
    assert_eq!(
        procs[0],
        (1, "airlock-worker".to_owned()),
        "the worker is the sandbox's init"
    );
    let me = i32::try_from(std::process::id()).expect("pid");
    let my_name = fs::read_to_string("/proc/self/comm")
        .expect("comm")
        .trim()
        .to_owned();
    assert!(
        procs
            .iter()
            .all(|(pid, comm)| *pid != me && *comm != my_name),
        "the test process is invisible"
    );
    for (_, comm) in &procs {
        assert!(
            ["bwrap", "airlock-worker", "sh", "cat"].contains(&comm.as_str()),
            "unexpected process {comm}"
        );
    }
    assert_eq!(events.tagged("host: "), ["airlock-sandbox"]);
    h.finish().await;
}

#[tokio::test]
async fn host_files_are_read_only_or_invisible() {
    let mut h = Harness::new(4);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let host_tmp_marker = std::env::temp_dir().join(format!("airlock-marker-{tag}"));
    fs::write(&host_tmp_marker, "host secret").expect("host /tmp marker");
    let state_marker = h.state.join(format!("marker-{tag}"));
    fs::write(&state_marker, "state secret").expect("state dir marker");

    let script = format!(
        r#"
        for p in /usr/probe /etc/probe /probe /bin/probe /airlock/probe /airlock/input.json /etc/passwd /proc/sys/kernel/hostname; do
            if (echo x > "$p") 2>/dev/null; then echo "write: $p ok"; else echo "write: $p denied"; fi
        done
        for p in /home /root /var /sys /etc/shadow /etc/ssl/private {tmp} {state} {statedir}; do
            if [ -e "$p" ]; then echo "see: $p visible"; else echo "see: $p absent"; fi
        done
        echo "tmp entries: $(ls -A /tmp | wc -l)"
        echo "etc: $(ls /etc | tr '\n' ' ')"
        if echo made-in-sandbox > /scratch/file; then echo "scratch: ok"; fi
        if echo x > /tmp/file-{tag}; then echo "tmp: ok"; fi
        "#,
        tmp = host_tmp_marker.display(),
        state = state_marker.display(),
        statedir = h.state.display(),
    );
    let request = h.request(&script);
    let (events, exit) = h.run(&request).await;
    // Clean up before asserting, so a failure leaves nothing in the host's /tmp.
    fs::remove_file(&host_tmp_marker).expect("marker");
    assert_eq!(exit.code, Some(0), "{:#?}", events.all);
    let writes = events.tagged("write: ");
    assert_eq!(writes.len(), 8);
    for line in &writes {
        assert!(
            line.ends_with(" denied"),
            "writing outside /scratch and /tmp fails: {line}"
        );
    }
    let seen = events.tagged("see: ");
    assert_eq!(seen.len(), 9);
    for line in &seen {
        assert!(
            line.ends_with(" absent"),
            "host paths are invisible: {line}"
        );
    }
    assert_eq!(
        events.tagged("tmp entries: "),
        ["0"],
        "the sandbox's /tmp is its own"
    );
    let allowed = [
        "alternatives",
        "ca-certificates",
        "group",
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "localtime",
        "nsswitch.conf",
        "passwd",
        "ssl",
    ];
    let etc = events.tagged("etc: ");
    assert_eq!(etc.len(), 1);
    for entry in etc[0].split_whitespace() {
        assert!(
            allowed.contains(&entry),
            "/etc holds only what programs need, not {entry}"
        );
    }
    assert!(etc[0].split_whitespace().any(|e| e == "passwd"));
    assert!(events.stdout().contains(&"scratch: ok".to_owned()));
    assert!(events.stdout().contains(&"tmp: ok".to_owned()));

    let name = request.sandbox_name();
    let scratch = h.scratch(&name);
    assert_eq!(
        fs::read_to_string(scratch.join("file")).expect("scratch file"),
        "made-in-sandbox\n"
    );
    assert!(
        !std::env::temp_dir().join(format!("file-{tag}")).exists(),
        "the sandbox's /tmp is not the host's"
    );
    h.rt.remove(&name).await.expect("remove");
    assert!(
        !scratch.exists(),
        "the scratch directory is gone after remove"
    );
    fs::remove_file(&state_marker).expect("marker");
    h.finish().await;
}

#[tokio::test]
async fn sandbox_runs_as_an_unprivileged_host_uid() {
    let mut h = Harness::new(5);
    let request = h.request(r#"echo "ids: $(id -u) $(id -g) $(id -G)"; echo "user: $(id -un)"; touch /scratch/made; echo "home: $HOME""#);
    let (events, exit) = h.run(&request).await;
    assert_eq!(exit.code, Some(0), "{:#?}", events.all);
    assert_eq!(events.tagged("ids: "), ["1000 1000 1000"]);
    assert_eq!(events.tagged("user: "), ["airlock"]);
    assert_eq!(events.tagged("home: "), ["/scratch"]);
    let made = fs::metadata(h.scratch(&request.sandbox_name()).join("made"))
        .expect("file made in the sandbox");
    assert_ne!(
        made.uid(),
        0,
        "files the sandbox makes are not root's on the host"
    );
    assert!(
        h.uids().contains(&made.uid()),
        "owned by a pool uid, got {}",
        made.uid()
    );
    assert_eq!(made.gid(), made.uid());
    h.finish().await;
}

#[tokio::test]
async fn no_capabilities_no_new_privileges_no_nested_user_namespaces() {
    let mut h = Harness::new(6);
    let script = r#"
        grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -d '\t' | sed 's/^/status: /'
        unshare -U true 2>/dev/null; echo "unshare-user: $?"
        unshare -r true 2>/dev/null; echo "unshare-root: $?"
    "#;
    let (events, exit) = h.run(&h.request(script)).await;
    assert_eq!(exit.code, Some(0), "{:#?}", events.all);
    let status = events.tagged("status: ");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            status.contains(&format!("{cap}:0000000000000000")),
            "{cap} is empty: {status:?}"
        );
    }
    assert!(status.contains(&"NoNewPrivs:1".to_owned()), "{status:?}");
    for key in ["unshare-user: ", "unshare-root: "] {
        let code = events.tagged(key);
        assert_eq!(code.len(), 1);
        assert!(
            code[0] != "0" && code[0] != "127",
            "a nested user namespace is refused ({key}{})",
            code[0]
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn environment_holds_only_the_allowed_variables() {
    // SAFETY: the standard library serialises its own environment access; nothing in
    // this test binary reads the environment through libc concurrently.
    unsafe {
        std::env::set_var(
            "AIRLOCK_DATABASE_URL",
            "postgres://airlock:secret@127.0.0.1/airlock",
        );
        std::env::set_var("AIRLOCK_TEST_SECRET", "must-not-leak");
    }
    let mut h = Harness::new(7);
    let mut request = h.request(
        r#"echo "worker: $(cat /proc/$PPID/comm)"; tr '\0' '\n' < /proc/$PPID/environ | sed 's/^/env: /'; echo "init: $(cat /proc/1/comm) $PPID"; env | grep -c -e SECRET -e DATABASE | sed 's/^/leaks: /'"#,
    );
    request.env = BTreeMap::from([("MODEL".to_owned(), "tiny".to_owned())]);
    let (events, exit) = h.run(&request).await;
    assert_eq!(events.tagged("worker: "), ["airlock-worker"]);
    let env: BTreeMap<String, String> = events
        .tagged("env: ")
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("HOME", "/scratch".to_owned()),
        ("TMPDIR", "/tmp".to_owned()),
        ("LANG", "C.UTF-8".to_owned()),
        // bwrap sets PWD after --chdir.
        ("PWD", "/scratch".to_owned()),
        ("MODEL", "tiny".to_owned()),
        ("AIRLOCK_RUN_ID", request.run_id.to_string()),
        ("AIRLOCK_EVALUATION_ID", request.evaluation_id.to_string()),
        ("AIRLOCK_TASK_ID", "task-1".to_owned()),
        ("AIRLOCK_EPOCH", "1".to_owned()),
        ("AIRLOCK_TASK_INPUT", "/airlock/input.json".to_owned()),
        ("AIRLOCK_EVENTS", "/airlock/run/events".to_owned()),
        ("AIRLOCK_WORKER_TIMEOUT_SECS", "30".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        env, expected,
        "the worker's environment is exactly the allowed set"
    );
    assert_eq!(
        events.tagged("init: "),
        ["airlock-worker 1"],
        "the worker is the sandbox's init: no process of bwrap, whose environment is the \
         orchestrator's to set, is visible inside"
    );
    assert_eq!(
        events.tagged("leaks: "),
        ["0"],
        "the program sees no secret of the host"
    );
    assert_eq!(exit.code, Some(0));
    h.finish().await;
}

#[tokio::test]
async fn fork_bomb_hits_the_process_limit() {
    let mut h = Harness::new(8);
    let mut request = h.request("bomb() { bomb | bomb & }; bomb; sleep 100");
    request.timeout_secs = 3;
    let started = Instant::now();
    let (name, mut events) = h.start(&request).await;
    let mut peak = 0;
    let exit = {
        let wait = h.rt.wait(&name);
        tokio::pin!(wait);
        let mut ticker = tokio::time::interval(Duration::from_millis(25));
        let mut output_open = true;
        loop {
            tokio::select! {
                exit = &mut wait => break exit.expect("the sandbox ends"),
                event = events.next(), if output_open => output_open = event.is_some(),
                _ = ticker.tick() => peak = peak.max(h.sandbox_processes().len()),
            }
        }
    };
    eprintln!("fork bomb: at most {peak} sandbox processes at once");
    assert!(
        peak >= 100,
        "the bomb multiplied ({peak} processes at most)"
    );
    assert!(
        peak <= 512,
        "the sandbox never exceeded 512 processes ({peak})"
    );
    assert!(exit.code.is_some() || exit.deadline_exceeded, "{exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3 + 5 + 10),
        "the run ended"
    );
    assert!(
        h.sandbox_processes().is_empty(),
        "nothing of the bomb survives wait()"
    );
    let status = std::process::Command::new("true")
        .status()
        .expect("the host can still spawn processes");
    assert!(status.success());
    h.finish().await;
}

#[tokio::test]
async fn memory_hog_is_oom_killed() {
    let mut h = Harness::new(9);
    let mut request = h.request(r#"head -c 2000000000 /dev/zero | tail; echo "tail: $?""#);
    request.resources.memory = "64Mi".into();
    let (events, exit) = h.run(&request).await;
    assert!(
        exit.oom_killed,
        "the kernel's OOM killer ended the hog: {exit:?} {:#?}",
        events.all
    );
    assert!(exit.code.is_some(), "{exit:?}");
    assert!(!exit.stopped && !exit.deadline_exceeded);
    h.finish().await;
}

#[tokio::test]
async fn detached_processes_are_gone_after_wait() {
    let mut h = Harness::new(10);
    let script = r#"
        setsid sh -c 'echo $$ > /scratch/setsid.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &
        sh -c '(sh -c "echo \$\$ > /scratch/double.pid; exec sleep 300" </dev/null >/dev/null 2>&1 &)'
        while [ ! -s /scratch/setsid.pid ] || [ ! -s /scratch/double.pid ]; do sleep 0.02; done
        echo started
        while [ ! -e /scratch/go ]; do sleep 0.02; done
        echo leaving
    "#;
    let request = h.request(script);
    let (name, mut events) = h.start(&request).await;
    events.until_stdout("started").await;
    let scratch = h.scratch(&name);
    let inner_pid = |file: &str| -> i32 {
        fs::read_to_string(scratch.join(file))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    };
    let inner = [inner_pid("setsid.pid"), inner_pid("double.pid")];
    // Find the two sleepers on the host by their pid inside the sandbox.
    let mut sleepers: Vec<Proc> = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            sleepers = h
                .sandbox_processes()
                .into_iter()
                .filter(|p| {
                    p.name == "sleep"
                        && p.nspid.len() >= 2
                        && inner.contains(p.nspid.last().unwrap_or(&0))
                })
                .collect();
            sleepers.len() == 2
        })
        .await,
        "both detached sleepers run on the host: {sleepers:?}"
    );
    fs::write(scratch.join("go"), "").expect("signal the program");
    events.read_to_end().await;
    assert!(events.stdout().contains(&"leaving".to_owned()));
    let exit = h.rt.wait(&name).await.expect("wait");
    assert_eq!(exit.code, Some(0));
    let now = processes();
    for sleeper in &sleepers {
        let alive = now
            .iter()
            .any(|p| p.pid == sleeper.pid && p.uids == sleeper.uids);
        assert!(
            !alive,
            "detached sleeper {} is gone when wait() returns",
            sleeper.pid
        );
    }
    assert!(
        h.sandbox_processes().is_empty(),
        "no process of the sandbox uid is left"
    );
    h.finish().await;
}

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let mut h = Harness::new(11);
    let mut request = h.request("sleep 300 & sleep 300 & (sleep 300 &) ; echo started; wait");
    request.timeout_secs = 2;
    let started = Instant::now();
    let (events, exit) = h.run(&request).await;
    let elapsed = started.elapsed();
    assert_eq!(
        exit.code,
        Some(124),
        "the worker reports the time-out: {exit:?} {:#?}",
        events.all
    );
    assert!(
        !exit.deadline_exceeded,
        "the worker, not the runtime's backstop, ended it"
    );
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(2 + 5),
        "{elapsed:?}"
    );
    assert!(
        events
            .all
            .iter()
            .any(|e| matches!(e.body, EventBody::TimedOut { limit_secs: 2 }))
    );
    assert!(
        h.sandbox_processes().is_empty(),
        "no process of the tree survives"
    );
    h.finish().await;
}

#[tokio::test]
async fn runtime_deadline_backstops_a_frozen_worker() {
    let mut h = Harness::with(12, |c| c.deadline_margin = Duration::from_secs(2));
    // The worker is the sandbox's pid 1: the kernel drops the program's SIGSTOP and
    // SIGKILL to it, so the program cannot silence the one enforcing its limits.
    let mut request = h.request(
        "kill -STOP 1; kill -KILL 1; kill -STOP $PPID; \
         [ \"$(cut -d' ' -f3 /proc/1/stat)\" != T ] && echo worker alive; sleep 300",
    );
    request.timeout_secs = 3;
    let started = Instant::now();
    let (name, mut events) = h.start(&request).await;
    events.until_stdout("worker alive").await;
    // A worker frozen from outside (a bug, a debugger) cannot end its run: the runtime's
    // own deadline does.
    let worker = h
        .sandbox_processes()
        .into_iter()
        .find(|p| p.name == "airlock-worker")
        .expect("the worker runs as the sandbox uid");
    // SAFETY: kill(2) on a pid this test just read; a vanished pid only fails.
    assert_eq!(unsafe { libc::kill(worker.pid, libc::SIGSTOP) }, 0);
    events.read_to_end().await;
    let exit = tokio::time::timeout(RUN_LIMIT, h.rt.wait(&name))
        .await
        .expect("wait returns")
        .expect("the sandbox ends");
    assert!(exit.deadline_exceeded, "{exit:?}");
    assert!(!exit.stopped);
    assert!(
        started.elapsed() < Duration::from_secs(3 + 2 + 3),
        "{:?}",
        started.elapsed()
    );
    assert!(h.sandbox_processes().is_empty());
    h.finish().await;
}

#[tokio::test]
async fn stop_ends_a_running_sandbox_quickly() {
    let mut h = Harness::new(13);
    let request = h.request("echo ready; exec sleep 600");
    let (name, mut events) = h.start(&request).await;
    events.until_stdout("ready").await;
    let before = Instant::now();
    let (exit, stopped) = tokio::join!(h.rt.wait(&name), h.rt.stop(&name));
    let took = before.elapsed();
    stopped.expect("stop");
    let exit = exit.expect("wait");
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    assert!(exit.stopped, "{exit:?}");
    h.rt.stop(&name).await.expect("stop is idempotent");
    assert_eq!(h.rt.wait(&name).await.expect("wait again"), exit);
    events.read_to_end().await;
    assert!(h.sandbox_processes().is_empty());
    assert!(matches!(
        h.rt.stop("airlock-unknown-1").await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(
        matches!(h.rt.output(&name).await, Err(RuntimeError::Failed(m)) if m.contains("already taken"))
    );
    h.finish().await;
}

#[tokio::test]
async fn two_sandboxes_cannot_see_each_other() {
    let mut h = Harness::new(14);
    let a = h.request("echo secret-a > /scratch/secret; echo ready; exec sleep 600");
    let (name_a, mut events_a) = h.start(&a).await;
    events_a.until_stdout("ready").await;
    let scratch_a = h.scratch(&name_a);
    let uid_a = fs::metadata(&scratch_a).expect("scratch a").uid();

    // While A runs, every process in its cgroup runs as A's pool uid, never as root.
    let in_cgroup: Vec<Proc> = processes()
        .into_iter()
        .filter(|p| {
            fs::read_to_string(format!("/proc/{}/cgroup", p.pid)).is_ok_and(|c| {
                c.lines()
                    .any(|l| l.ends_with(&format!("/airlock/{name_a}")))
            })
        })
        .collect();
    assert!(
        !in_cgroup.is_empty(),
        "the sandbox's processes are in its cgroup"
    );
    for p in &in_cgroup {
        assert!(
            p.uids.iter().all(|u| *u == uid_a),
            "{p:?} runs as {uid_a} only"
        );
    }
    assert_ne!(uid_a, 0);

    let script_b = format!(
        r#"echo "scratch: $(ls -A /scratch | tr '\n' ' ')"
        if cat {a}/secret 2>/dev/null; then echo "read-a: yes"; else echo "read-a: no"; fi
        if ls {state} >/dev/null 2>&1; then echo "state: visible"; else echo "state: absent"; fi
        echo mine > /scratch/mine"#,
        a = scratch_a.display(),
        state = h.state.display()
    );
    let b = h.request(&script_b);
    let (events_b, exit_b) = h.run(&b).await;
    assert_eq!(exit_b.code, Some(0), "{:#?}", events_b.all);
    assert_eq!(
        events_b.tagged("scratch: "),
        [""],
        "B's scratch starts empty"
    );
    assert_eq!(events_b.tagged("read-a: "), ["no"]);
    assert_eq!(events_b.tagged("state: "), ["absent"]);

    let scratch_b = h.scratch(&b.sandbox_name());
    let uid_b = fs::metadata(&scratch_b).expect("scratch b").uid();
    assert_ne!(uid_a, uid_b, "each live sandbox has its own host uid");
    assert_eq!(
        fs::read_to_string(scratch_a.join("secret")).expect("A's file"),
        "secret-a\n"
    );
    // On the host too, B's uid cannot read A's scratch.
    let output = std::process::Command::new("cat")
        .arg(scratch_a.join("secret"))
        .uid(uid_b)
        .gid(uid_b)
        .output()
        .expect("run cat as B's uid");
    assert!(
        !output.status.success(),
        "uid {uid_b} cannot read A's scratch"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("Permission denied"));

    h.rt.stop(&name_a).await.expect("stop A");
    events_a.read_to_end().await;
    h.finish().await;
}

#[tokio::test]
async fn create_twice_starts_one_sandbox() {
    let mut h = Harness::new(15);
    let request = h.request("echo ready; exec sleep 600");
    let (name, mut events) = h.start(&request).await;
    assert_eq!(
        h.rt.create(&request).await.expect("create again"),
        Created::Existing
    );
    events.until_stdout("ready").await;
    let workers: Vec<Proc> = h
        .sandbox_processes()
        .into_iter()
        .filter(|p| p.name == "airlock-worker")
        .collect();
    assert_eq!(workers.len(), 1, "one worker runs: {workers:?}");
    let listed = h.rt.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].run_id, request.run_id);
    assert_eq!(listed[0].attempt, 1);
    assert!(listed[0].alive);

    h.rt.stop(&name).await.expect("stop");
    assert_eq!(
        h.rt.create(&request).await.expect("create after stop"),
        Created::Existing
    );
    assert!(!h.rt.list().await.expect("list")[0].alive);
    events.read_to_end().await;
    h.finish().await;
}

#[tokio::test]
async fn leftovers_of_an_earlier_process_are_listed_stopped_and_removed() {
    let mut h = Harness::new(16);
    let request = h.request("echo ready; exec sleep 600");
    let (name, mut events) = h.start(&request).await;
    events.until_stdout("ready").await;

    // A second runtime on the same state directory knows the sandbox only from disk,
    // like an orchestrator restarted after a crash.
    let restarted = LocalRuntime::new(h.rt.config().clone()).expect("second runtime");
    let listed = restarted.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].evaluation_id, request.evaluation_id);
    assert!(listed[0].alive);
    assert_eq!(
        restarted.create(&request).await.expect("create"),
        Created::Existing
    );
    assert!(matches!(
        restarted.output(&name).await,
        Err(RuntimeError::Failed(_))
    ));

    let before = Instant::now();
    restarted.stop(&name).await.expect("stop from disk");
    assert!(before.elapsed() < Duration::from_secs(2));
    let exit = restarted.wait(&name).await.expect("wait from disk");
    assert!(exit.stopped);
    assert!(!restarted.list().await.expect("list")[0].alive);
    // The first runtime sees its sandbox end too.
    let first = h.rt.wait(&name).await.expect("wait");
    assert!(
        !first.stopped && (first.signal.is_some() || first.code != Some(0)),
        "{first:?}"
    );
    events.read_to_end().await;

    restarted.remove(&name).await.expect("remove from disk");
    assert!(!h.scratch(&name).exists());
    for dir in cgroup_dirs(&name) {
        assert!(!dir.exists(), "cgroup {} is removed", dir.display());
    }
    assert!(restarted.list().await.expect("list").is_empty());
    h.finish().await;
}

#[tokio::test]
async fn gpus_are_refused() {
    let h = Harness::new(17);
    let mut request = h.request("true");
    request.resources.gpu = 1;
    match h.rt.create(&request).await {
        Err(RuntimeError::Refused(message)) => {
            assert_eq!(
                message,
                "the local runtime has no GPUs; this spec asks for 1"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(h.rt.list().await.expect("list").is_empty());
    assert!(!h.state.join(request.sandbox_name()).exists());
    h.finish().await;
}

#[tokio::test]
async fn a_sandbox_that_cannot_start_reports_bwraps_error() {
    // A worker binary that disappears after start-up: bwrap cannot bind it.
    let dir =
        std::env::temp_dir().join(format!("airlock-vanishing-worker-{}", uuid::Uuid::new_v4()));
    fs::create_dir_all(&dir).expect("dir");
    let worker = dir.join("airlock-worker");
    fs::copy(worker_binary(), &worker).expect("copy the worker");
    let mut h = Harness::with(18, |c| c.worker_path = worker.clone());
    fs::remove_dir_all(&dir).expect("remove the worker");

    let request = h.request("echo never");
    let (name, mut events) = h.start(&request).await;
    events.read_to_end().await;
    assert!(events.all.is_empty());
    match h.rt.wait(&name).await {
        Err(RuntimeError::Failed(message)) => {
            assert!(
                message.contains("bwrap:"),
                "bwrap's own error is reported: {message}"
            );
        }
        other => panic!("expected a runtime failure, got {other:?}"),
    }
    h.finish().await;
}

#[tokio::test]
async fn limits_follow_the_resources() {
    let mut h = Harness::new(19);
    let mut request = h.request(
        r#"
        limit() { grep "^$1" /proc/self/limits | awk '{print $(NF-2) " " $(NF-1)}'; }
        echo "nproc: $(limit 'Max processes')"
        echo "nofile: $(limit 'Max open files')"
        echo "core: $(limit 'Max core file size')"
        echo "fsize: $(limit 'Max file size')"
        echo "cpu: $(limit 'Max cpu time')"
        echo ready; exec sleep 600
        "#,
    );
    request.resources.cpu = "500m".into();
    request.resources.memory = "128Mi".into();
    request.timeout_secs = 40;
    let (name, mut events) = h.start(&request).await;
    events.until_stdout("ready").await;
    // Soft and hard limit of each.
    assert_eq!(events.tagged("nproc: "), ["512 512"]);
    assert_eq!(events.tagged("nofile: "), ["1024 1024"]);
    assert_eq!(events.tagged("core: "), ["0 0"]);
    assert_eq!(events.tagged("fsize: "), ["1073741824 1073741824"]);
    assert_eq!(events.tagged("cpu: "), ["100 100"], "40 s x 1 core + 60 s");

    let read = |path: PathBuf| fs::read_to_string(&path).map(|t| t.trim().to_owned()).ok();
    let root = Path::new("/sys/fs/cgroup");
    let v2 = root.join("airlock").join(&name);
    if v2.exists() {
        assert_eq!(read(v2.join("memory.max")).as_deref(), Some("134217728"));
        assert_eq!(read(v2.join("pids.max")).as_deref(), Some("512"));
        assert_eq!(read(v2.join("cpu.max")).as_deref(), Some("50000 100000"));
    } else {
        let v1 = |controller: &str, file: &str| {
            read(root.join(controller).join("airlock").join(&name).join(file))
        };
        assert_eq!(
            v1("memory", "memory.limit_in_bytes").as_deref(),
            Some("134217728")
        );
        assert_eq!(v1("pids", "pids.max").as_deref(), Some("512"));
        assert_eq!(v1("cpu", "cpu.cfs_period_us").as_deref(), Some("100000"));
        assert_eq!(v1("cpu", "cpu.cfs_quota_us").as_deref(), Some("50000"));
    }
    h.rt.stop(&name).await.expect("stop");
    events.read_to_end().await;
    h.finish().await;
}

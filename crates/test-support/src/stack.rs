//! The whole platform as real processes: gateway, orchestrator and result-processor,
//! each on a free port, against the test's own database and virtual host.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::Api;
use crate::infra::{TestBroker, TestDatabase};
use crate::{binary, eventually};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Gateway,
    Orchestrator,
    ResultProcessor,
}

impl Service {
    pub fn binary(self) -> &'static str {
        match self {
            Self::Gateway => "airlock-gateway",
            Self::Orchestrator => "airlock-orchestrator",
            Self::ResultProcessor => "airlock-result-processor",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    /// AIRLOCK_MAX_CONCURRENT_RUNS.
    pub capacity: usize,
    /// AIRLOCK_TEAM_MAX_CONCURRENT_RUNS.
    pub team_quota: Option<usize>,
    /// Extra environment per service.
    pub env: Vec<(Service, String, String)>,
    /// When set, the gateway reaches RabbitMQ through this port (a test proxy).
    pub gateway_amqp_port: Option<u16>,
    /// When set, the gateway reaches PostgreSQL through this port (a test proxy).
    pub gateway_postgres_port: Option<u16>,
    /// Query parameters added to every service's database URL (e.g. `sslmode=require`).
    pub database_params: Option<String>,
    /// Replicas of each service started with the stack (default one each).
    pub replicas: Vec<(Service, usize)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            capacity: 4,
            team_quota: None,
            env: Vec::new(),
            gateway_amqp_port: None,
            gateway_postgres_port: None,
            database_params: None,
            replicas: Vec::new(),
        }
    }
}

/// One process of the stack: a service and its replica number.
pub type Replica = (Service, usize);

pub struct Stack {
    pub db: TestDatabase,
    pub broker: TestBroker,
    pub options: StackOptions,
    pub sandbox_dir: PathBuf,
    pub log_dir: PathBuf,
    /// First host uid of this stack's sandboxes (each stack gets its own range of 64).
    pub uid_base: u32,
    processes: HashMap<Replica, Child>,
    ports: HashMap<Replica, u16>,
}

impl Stack {
    pub async fn start(options: StackOptions) -> Self {
        let db = TestDatabase::create().await;
        let broker = TestBroker::create();
        let root =
            std::env::temp_dir().join(format!("airlock-test-{}", uuid::Uuid::new_v4().simple()));
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let mut stack = Self {
            db,
            broker,
            options,
            sandbox_dir: root.join("sandboxes"),
            log_dir,
            uid_base: 300_000 + (uuid::Uuid::new_v4().as_u128() % 10_000) as u32 * 64,
            processes: HashMap::new(),
            ports: HashMap::new(),
        };
        stack.migrate().await;
        let mut started = Vec::new();
        for service in [
            Service::Gateway,
            Service::ResultProcessor,
            Service::Orchestrator,
        ] {
            for index in 0..stack.replica_count(service) {
                stack.start_replica(service, index).await;
                started.push((service, index));
            }
        }
        for (service, index) in started {
            stack.wait_replica_ready(service, index).await;
        }
        stack
    }

    fn replica_count(&self, service: Service) -> usize {
        self.options
            .replicas
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(1, |(_, n)| *n)
    }

    /// Applies the migrations (services refuse to start on any other schema).
    pub async fn migrate(&self) {
        let output = Command::new(binary("airlock-gateway"))
            .arg("migrate")
            .env("AIRLOCK_DATABASE_URL", &self.db.url)
            .output()
            .await
            .expect("run migrate");
        assert!(
            output.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn env(&self, service: Service) -> Vec<(String, String)> {
        let amqp = match (service, self.options.gateway_amqp_port) {
            (Service::Gateway, Some(port)) => self.broker.url_via(port),
            _ => self.broker.url(),
        };
        let mut database = match (service, self.options.gateway_postgres_port) {
            (Service::Gateway, Some(port)) => self.db.url_via(port),
            _ => self.db.url.clone(),
        };
        if let Some(params) = &self.options.database_params {
            database = format!("{database}?{params}");
        }
        let mut env = vec![
            ("AIRLOCK_HTTP_ADDR".into(), "127.0.0.1:0".into()),
            ("AIRLOCK_DATABASE_URL".into(), database),
            ("AIRLOCK_AMQP_URL".into(), amqp),
            ("AIRLOCK_SHUTDOWN_GRACE_SECS".into(), "5".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        if service == Service::Orchestrator {
            env.push((
                "AIRLOCK_MAX_CONCURRENT_RUNS".into(),
                self.options.capacity.to_string(),
            ));
            env.push((
                "AIRLOCK_SANDBOX_DIR".into(),
                self.sandbox_dir.display().to_string(),
            ));
            env.push(("AIRLOCK_SANDBOX_UID_BASE".into(), self.uid_base.to_string()));
            env.push(("AIRLOCK_SANDBOX_UID_COUNT".into(), "64".into()));
            env.push(("AIRLOCK_RETRY_BACKOFF_SECS".into(), "1".into()));
            if let Some(quota) = self.options.team_quota {
                env.push(("AIRLOCK_TEAM_MAX_CONCURRENT_RUNS".into(), quota.to_string()));
            }
        }
        for (s, k, v) in &self.options.env {
            if *s == service {
                env.push((k.clone(), v.clone()));
            }
        }
        env
    }

    /// Starts a service (its first replica) and learns its port from its "listening" log
    /// line.
    pub async fn start_service(&mut self, service: Service) {
        self.start_replica(service, 0).await;
    }

    /// Starts replica `index` of a service; its log is `<binary>.log` for the first
    /// replica and `<binary>.<index>.log` for the others.
    pub async fn start_replica(&mut self, service: Service, index: usize) {
        let mut command = Command::new(binary(service.binary()));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env(service))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn service");
        let stderr = child.stderr.take().expect("stderr");
        let log_path = self.log_path(service, index);
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("open log");
            let mut port_tx = Some(port_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                use std::io::Write;
                let _ = writeln!(log, "{line}");
                if line.contains("listening")
                    && let Some(port) = listening_port(&line)
                    && let Some(tx) = port_tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = tokio::time::timeout(Duration::from_secs(60), port_rx)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not start; see {}",
                    service.binary(),
                    self.log_dir.display()
                )
            })
            .unwrap_or_else(|_| {
                panic!(
                    "{} exited at start; see {}",
                    service.binary(),
                    self.log_dir.display()
                )
            });
        self.ports.insert((service, index), port);
        self.processes.insert((service, index), child);
    }

    /// Runs one more process of a service with extra environment and waits (at most a
    /// minute) for it to exit by itself: for start-ups that must be refused.
    pub async fn run_until_exit(
        &self,
        service: Service,
        extra: &[(&str, &str)],
    ) -> std::process::Output {
        let mut command = Command::new(binary(service.binary()));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env(service))
            .envs(extra.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit", service.binary()))
            .expect("run service")
    }

    fn log_path(&self, service: Service, index: usize) -> PathBuf {
        match index {
            0 => self.log_dir.join(format!("{}.log", service.binary())),
            n => self.log_dir.join(format!("{}.{n}.log", service.binary())),
        }
    }

    pub async fn wait_ready(&self, service: Service) {
        self.wait_replica_ready(service, 0).await;
    }

    pub async fn wait_replica_ready(&self, service: Service, index: usize) {
        let url = format!("{}/readyz", self.replica_url(service, index));
        let client = reqwest::Client::new();
        eventually(
            &format!("{} ready", service.binary()),
            Duration::from_secs(60),
            || {
                let request = client.get(&url).send();
                async move {
                    request
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await;
    }

    /// SIGKILLs a service (its first replica): no drain, no goodbye.
    pub async fn kill(&mut self, service: Service) {
        self.kill_replica(service, 0).await;
    }

    /// SIGKILLs one replica.
    pub async fn kill_replica(&mut self, service: Service, index: usize) {
        if let Some(mut child) = self.processes.remove(&(service, index)) {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Whether a replica's process is still running (it may have exited by itself).
    pub fn replica_running(&mut self, service: Service, index: usize) -> bool {
        self.processes
            .get_mut(&(service, index))
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends `signal` to one replica (SIGSTOP and SIGCONT freeze and thaw it).
    pub fn signal_replica(&self, service: Service, index: usize, signal: i32) {
        if let Some(pid) = self.processes.get(&(service, index)).and_then(Child::id) {
            // SAFETY: kill(2) on a child process this stack owns.
            unsafe { libc::kill(pid as i32, signal) };
        }
    }

    /// Waits (at most `limit`) for a replica to exit by itself; its exit status.
    pub async fn wait_replica_exit(
        &mut self,
        service: Service,
        index: usize,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.processes.remove(&(service, index))?;
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                self.processes.insert((service, index), child);
                None
            }
        }
    }

    /// SIGTERMs a service (its first replica) and waits for it to exit.
    pub async fn terminate(&mut self, service: Service) -> std::process::ExitStatus {
        self.terminate_replica(service, 0).await
    }

    /// SIGTERMs one replica and waits for it to exit.
    pub async fn terminate_replica(
        &mut self,
        service: Service,
        index: usize,
    ) -> std::process::ExitStatus {
        let mut child = self
            .processes
            .remove(&(service, index))
            .expect("service running");
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on a child process this stack owns.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        child.wait().await.expect("wait for service")
    }

    pub async fn restart(&mut self, service: Service) {
        self.start_service(service).await;
        self.wait_ready(service).await;
    }

    pub fn url(&self, service: Service) -> String {
        self.replica_url(service, 0)
    }

    pub fn replica_url(&self, service: Service, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[&(service, index)])
    }

    /// Creates a user and team if needed and returns a new API token.
    pub async fn token(&self, user: &str, team: &str, role: &str) -> String {
        let output = Command::new(binary("airlock-gateway"))
            .args([
                "admin",
                "create-token",
                "--user",
                user,
                "--team",
                team,
                "--role",
                role,
            ])
            .env("AIRLOCK_DATABASE_URL", &self.db.url)
            .output()
            .await
            .expect("run create-token");
        assert!(
            output.status.success(),
            "create-token failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    pub fn api(&self, token: &str) -> Api {
        Api::new(&self.url(Service::Gateway), token)
    }

    /// Live host processes owned by this stack's sandbox uids.
    pub fn sandbox_processes(&self) -> Vec<u32> {
        let range = self.uid_base..self.uid_base + 64;
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|u| u.parse::<u32>().ok());
            // A zombie is dead already: it runs nothing and holds nothing but its pid
            // until the host's init reaps it.
            let zombie = status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains("Z (zombie)"));
            if uid.is_some_and(|u| range.contains(&u)) && !zombie {
                pids.push(pid);
            }
        }
        pids
    }

    /// The stack's replica of `service` that registered as `replica_id` (its log names
    /// it), among replicas `0..count`.
    pub fn replica_named(&self, service: Service, count: usize, replica_id: &str) -> usize {
        (0..count)
            .find(|i| self.replica_log(service, *i).contains(replica_id))
            .unwrap_or_else(|| panic!("no replica of {} is {replica_id}", service.binary()))
    }

    /// The replica id of the orchestrator holding the claim of the only unfinished
    /// attempt (or of any one, when several are).
    pub async fn claim_holder(&self) -> String {
        let pool = self.db.connect().await;
        let holder = sqlx::query_scalar(
            "SELECT replica_id FROM run_claims WHERE released_at IS NULL LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .expect("an unreleased claim");
        pool.close().await;
        holder
    }

    /// Reads a service's captured log (its first replica's).
    pub fn log(&self, service: Service) -> String {
        self.replica_log(service, 0)
    }

    /// Reads one replica's captured log.
    pub fn replica_log(&self, service: Service, index: usize) -> String {
        std::fs::read_to_string(self.log_path(service, index)).unwrap_or_default()
    }

    /// Stops everything and removes the test's database and virtual host.
    pub async fn stop(mut self) {
        for service in [
            Service::Gateway,
            Service::Orchestrator,
            Service::ResultProcessor,
        ] {
            let mut replicas: Vec<usize> = self
                .processes
                .keys()
                .filter(|(s, _)| *s == service)
                .map(|(_, i)| *i)
                .collect();
            replicas.sort_unstable();
            for index in replicas {
                self.terminate_replica(service, index).await;
            }
        }
        self.db.drop_database().await;
        self.broker.delete();
    }
}

fn listening_port(line: &str) -> Option<u16> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let addr = value.get("addr")?.as_str()?;
    addr.rsplit(':').next()?.parse().ok()
}

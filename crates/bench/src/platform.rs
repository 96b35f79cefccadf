//! The platform as processes this bench owns: a fresh database and RabbitMQ virtual host
//! (from airlock-test-support) and the three service binaries, found in `--bin-dir` or
//! beside this executable, each on a free port with its log under `log_dir`.
//!
//! `airlock_test_support::Stack` is not used because it looks for the binaries in the
//! parent of the executable's directory (right for `target/<profile>/deps/<test>`, wrong
//! for `target/<profile>/airlock-bench`) and does not expose the services' pids.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use airlock_test_support::{Service, TestBroker, TestDatabase};

pub const SERVICES: [Service; 3] = [
    Service::Gateway,
    Service::Orchestrator,
    Service::ResultProcessor,
];

/// The running services' pids, shared with the memory sampler.
pub type Pids = Arc<Mutex<HashMap<Service, u32>>>;

pub struct Platform {
    pub db: TestDatabase,
    pub broker: TestBroker,
    pub log_dir: PathBuf,
    pub pids: Pids,
    bin_dir: PathBuf,
    sandbox_dir: PathBuf,
    uid_base: u32,
    extra_env: Vec<(Service, String, String)>,
    processes: HashMap<Service, Child>,
    ports: HashMap<Service, u16>,
}

/// The directory of the service binaries, checked.
pub fn bin_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match given {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("the executable has no directory")?
            .to_path_buf(),
    };
    for name in SERVICES
        .iter()
        .map(|s| s.binary())
        .chain(["airlock-worker"])
    {
        if !dir.join(name).is_file() {
            bail!(
                "{} is missing: run `cargo build --release --bins` (or pass --bin-dir)",
                dir.join(name).display()
            );
        }
    }
    Ok(dir)
}

impl Platform {
    /// A fresh database and virtual host; no service runs yet. `extra_env` is added to
    /// each service's environment.
    pub async fn create(
        bin_dir: PathBuf,
        extra_env: Vec<(Service, String, String)>,
    ) -> Result<Self> {
        let db = TestDatabase::create().await;
        let broker = match std::panic::catch_unwind(TestBroker::create) {
            Ok(broker) => broker,
            Err(_) => {
                db.drop_database().await;
                bail!("cannot create the RabbitMQ virtual host (see the message above)");
            }
        };
        let suffix = db.name.trim_start_matches("airlock_test_");
        let root = std::env::temp_dir().join(format!("airlock-bench-{suffix}"));
        let log_dir = root.join("logs");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let platform = Self {
            db,
            broker,
            log_dir: log_dir.clone(),
            pids: Pids::default(),
            bin_dir,
            sandbox_dir: root.join("sandboxes"),
            // A range of its own, away from the tests' (300000 + k * 64, k < 10000).
            uid_base: 1_000_000 + (nanos % 10_000) * 64,
            extra_env,
            processes: HashMap::new(),
            ports: HashMap::new(),
        };
        if let Err(error) = std::fs::create_dir_all(&log_dir) {
            platform.shutdown().await;
            bail!("cannot create {}: {error}", log_dir.display());
        }
        if let Err(error) = platform.migrate().await {
            platform.shutdown().await;
            return Err(error);
        }
        Ok(platform)
    }

    /// Applies the migrations (services refuse an unmigrated database).
    async fn migrate(&self) -> Result<()> {
        let output = Command::new(self.bin_dir.join("airlock-gateway"))
            .arg("migrate")
            .env("AIRLOCK_DATABASE_URL", &self.db.url)
            .output()
            .await
            .context("run airlock-gateway migrate")?;
        if !output.status.success() {
            bail!(
                "migrate failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn env(&self, service: Service) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("AIRLOCK_HTTP_ADDR".into(), "127.0.0.1:0".into()),
            ("AIRLOCK_DATABASE_URL".into(), self.db.url.clone()),
            ("AIRLOCK_AMQP_URL".into(), self.broker.url()),
            ("AIRLOCK_SHUTDOWN_GRACE_SECS".into(), "5".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        if service == Service::Orchestrator {
            env.push((
                "AIRLOCK_SANDBOX_DIR".into(),
                self.sandbox_dir.display().to_string(),
            ));
            env.push(("AIRLOCK_SANDBOX_UID_BASE".into(), self.uid_base.to_string()));
        }
        for (s, name, value) in &self.extra_env {
            if *s == service {
                env.push((name.clone(), value.clone()));
            }
        }
        env
    }

    /// Starts a service, learns its port from its "listening" log line and waits until
    /// it is ready.
    pub async fn start(&mut self, service: Service) -> Result<()> {
        let path = self.bin_dir.join(service.binary());
        let mut child = Command::new(&path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env(service))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", path.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log_path = self.log_dir.join(format!("{}.log", service.binary()));
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            use std::io::Write;
            let mut lines = BufReader::new(stderr).lines();
            let mut port_tx = Some(port_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = writeln!(log, "{line}");
                if line.contains("listening")
                    && let Some(port) = listening_port(&line)
                    && let Some(tx) = port_tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match tokio::time::timeout(Duration::from_secs(60), port_rx).await {
            Ok(Ok(port)) => port,
            Ok(Err(_)) => bail!(
                "{} exited at start; see {}",
                service.binary(),
                log_path.display()
            ),
            Err(_) => bail!(
                "{} did not start; see {}",
                service.binary(),
                log_path.display()
            ),
        };
        if let Some(pid) = child.id()
            && let Ok(mut pids) = self.pids.lock()
        {
            pids.insert(service, pid);
        }
        self.ports.insert(service, port);
        self.processes.insert(service, child);
        self.wait_ready(service).await
    }

    async fn wait_ready(&self, service: Service) -> Result<()> {
        let url = format!("{}/readyz", self.url(service)?);
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(reply) = client.get(&url).send().await
                && reply.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} not ready after 60 s", service.binary());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERMs a service and waits for it to exit (SIGKILL after 15 s).
    pub async fn stop_service(&mut self, service: Service) {
        if let Ok(mut pids) = self.pids.lock() {
            pids.remove(&service);
        }
        let Some(mut child) = self.processes.remove(&service) else {
            return;
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on a child process this bench started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "{} did not stop after SIGTERM; killing it",
                service.binary()
            );
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    pub fn url(&self, service: Service) -> Result<String> {
        let port = self
            .ports
            .get(&service)
            .with_context(|| format!("{} has not started", service.binary()))?;
        Ok(format!("http://127.0.0.1:{port}"))
    }

    /// Creates a user and team and returns a new API token.
    pub async fn token(&self, user: &str, team: &str, role: &str) -> Result<String> {
        let output = Command::new(self.bin_dir.join(Service::Gateway.binary()))
            .args(["admin", "create-token", "--user", user, "--team", team])
            .args(["--role", role])
            .env("AIRLOCK_DATABASE_URL", &self.db.url)
            .output()
            .await
            .context("run airlock-gateway admin create-token")?;
        if !output.status.success() {
            bail!(
                "create-token failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    /// Whether a service reads `variable` (its `--help` names every variable it reads).
    pub async fn reads_env(&self, service: Service, variable: &str) -> Result<bool> {
        let output = Command::new(self.bin_dir.join(service.binary()))
            .arg("--help")
            .output()
            .await
            .with_context(|| format!("run {} --help", service.binary()))?;
        Ok(String::from_utf8_lossy(&output.stdout).contains(variable))
    }

    /// Messages in a queue of this platform's virtual host (ready and unacknowledged).
    pub async fn queue_depth(&self, queue: &str) -> Result<u64> {
        let output = Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_queues",
                "-p",
                &self.broker.vhost,
                "name",
                "messages",
            ])
            .output()
            .await
            .context("run rabbitmqctl list_queues")?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                (parts.next()? == queue).then(|| parts.next()?.parse::<u64>().ok())?
            })
            .next()
            .with_context(|| format!("queue {queue} not listed by rabbitmqctl"))
    }

    /// Stops every service and removes the database and virtual host.
    pub async fn shutdown(mut self) {
        for service in SERVICES {
            self.stop_service(service).await;
        }
        self.db.drop_database().await;
        let broker = &self.broker;
        if std::panic::catch_unwind(|| broker.delete()).is_err() {
            eprintln!("could not delete the virtual host {}", broker.vhost);
        }
        let _ = std::fs::remove_dir(&self.sandbox_dir);
    }
}

fn listening_port(line: &str) -> Option<u16> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let addr = value.get("addr")?.as_str()?;
    addr.rsplit(':').next()?.parse().ok()
}

//! A real Kubernetes API server (etcd and kube-apiserver from the envtest assets) for
//! tests: started once per test process on free ports of 127.0.0.1, with certificates
//! made for it by `openssl`, token authentication as `system:masters`, RBAC, and the
//! admission plugins a cluster has (NamespaceLifecycle, ServiceAccount, ResourceQuota,
//! PodSecurity). There is no kubelet, scheduler or controller manager: [`crate::RealCluster`]
//! plays the kubelet.
//!
//! The assets are found at `KUBEBUILDER_ASSETS`, else at `target/envtest/envtest` (where
//! `scripts/test.sh` unpacks them). Without them, [`ApiServer::shared`] answers `None`,
//! and a test says it was skipped; with `AIRLOCK_REQUIRE_KUBE_APISERVER=1` (set by CI)
//! it fails instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The token every test client presents (user `airlock-test`, group `system:masters`).
pub const TOKEN: &str = "airlock-envtest-token";

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    pub url: String,
    /// The CA that signed the API server's (and the test kubelets') serving certificate.
    pub ca_pem: String,
    /// The serving certificate and key for 127.0.0.1, PEM.
    pub cert_pem: String,
    pub key_pem: String,
    pub dir: PathBuf,
}

static SHARED: OnceLock<Option<ApiServer>> = OnceLock::new();

impl ApiServer {
    /// The test process's API server, started at the first call; `None` when the
    /// assets are not on this machine (and not required).
    pub fn shared() -> Option<&'static ApiServer> {
        SHARED
            .get_or_init(|| {
                let Some(assets) = assets() else {
                    assert!(
                        std::env::var_os("AIRLOCK_REQUIRE_KUBE_APISERVER").is_none(),
                        "AIRLOCK_REQUIRE_KUBE_APISERVER is set but no envtest assets were found \
                         (KUBEBUILDER_ASSETS, or target/envtest/envtest)"
                    );
                    return None;
                };
                // The processes die with the thread that started them (PR_SET_PDEATHSIG):
                // a thread that lives as long as the test process.
                let (sender, receiver) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let server = start(&assets);
                    let _ = sender.send(server);
                    loop {
                        std::thread::park();
                    }
                });
                Some(receiver.recv().expect("the API server thread answers"))
            })
            .as_ref()
    }

    /// A kubeconfig for this server with the test token, `namespace` as its default.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: test\n  user:\n    token: {TOKEN}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: test\n    namespace: {namespace}\ncurrent-context: envtest\n",
            url = self.url,
        )
    }
}

/// Where the etcd and kube-apiserver binaries are.
fn assets() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/envtest/envtest")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| dir.join("kube-apiserver").is_file() && dir.join("etcd").is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, a serving certificate for 127.0.0.1 signed by it, and the service account key.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=airlock-envtest-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write san.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    // PKCS#8, which rustls reads.
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "server.key",
            "-out",
            "server.pk8",
        ],
    );
    openssl(dir, &["genrsa", "-out", "sa.key", "2048"]);
    openssl(dir, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

/// Starts a child that dies with the calling thread.
fn spawn(binary: &Path, args: &[String], log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log).expect("create a log file");
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()))
}

/// Removes what API servers of test processes that have ended left (their etcd data).
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("airlock-envtest-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start(assets: &Path) -> ApiServer {
    remove_leftovers();
    let dir = std::env::temp_dir().join(format!(
        "airlock-envtest-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create the envtest dir");
    certificates(&dir);
    std::fs::write(
        dir.join("tokens.csv"),
        format!("{TOKEN},airlock-test,1,\"system:masters\"\n"),
    )
    .expect("write tokens.csv");
    let (client, peer, secure) = (free_port(), free_port(), free_port());
    let path = |name: &str| dir.join(name).display().to_string();
    let etcd = spawn(
        &assets.join("etcd"),
        &[
            format!("--data-dir={}", path("etcd")),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            "--unsafe-no-fsync".to_owned(),
        ],
        &dir.join("etcd.log"),
    );
    let apiserver = spawn(
        &assets.join("kube-apiserver"),
        &[
            format!("--etcd-servers=http://127.0.0.1:{client}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={secure}"),
            "--advertise-address=127.0.0.1".to_owned(),
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--tls-cert-file={}", path("server.crt")),
            format!("--tls-private-key-file={}", path("server.key")),
            format!("--client-ca-file={}", path("ca.crt")),
            format!("--token-auth-file={}", path("tokens.csv")),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!("--service-account-key-file={}", path("sa.pub")),
            format!("--service-account-signing-key-file={}", path("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--authorization-mode=RBAC".to_owned(),
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,ResourceQuota,PodSecurity"
                .to_owned(),
            // The tests' kubelets serve logs with a certificate of the same CA.
            format!("--kubelet-certificate-authority={}", path("ca.crt")),
            "--kubelet-preferred-address-types=InternalIP".to_owned(),
            // Many pods per second from a benchmark are not a denial of service here.
            "--max-requests-inflight=2000".to_owned(),
            "--max-mutating-requests-inflight=1000".to_owned(),
        ],
        &dir.join("kube-apiserver.log"),
    );
    // The children live as long as this (parked) thread.
    std::mem::forget((etcd, apiserver));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read a pem");
    let server = ApiServer {
        url: format!("https://127.0.0.1:{secure}"),
        ca_pem: read("ca.crt"),
        cert_pem: read("server.crt"),
        key_pem: read("server.pk8"),
        dir: dir.clone(),
    };
    wait_ready(&server);
    server
}

/// Polls `/readyz` with curl until it answers `ok` (about 10 s here).
fn wait_ready(server: &ApiServer) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let ca = server.dir.join("ca.crt");
    loop {
        let output = Command::new("curl")
            .args(["-s", "--max-time", "2", "--cacert"])
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .arg(format!("{}/readyz", server.url))
            .output();
        if let Ok(output) = output
            && output.stdout == b"ok"
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "kube-apiserver not ready within 120 s; logs in {}",
            server.dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

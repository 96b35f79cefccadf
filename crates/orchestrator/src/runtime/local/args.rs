//! The bubblewrap command line of one sandbox.
//!
//! [`bwrap_args`] is a pure function of what the host looks like ([`HostLayout`], probed
//! once at start-up), where the sandbox's files are ([`SandboxPaths`]), its environment
//! and its command, so the isolation it sets up can be checked without running anything.

use crate::runtime::SandboxRequest;
use crate::runtime::environment::{Layout, environment};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// The uid and gid of the sandbox user as seen inside.
pub(crate) const INSIDE_UID: u32 = 1000;
pub(crate) const INSIDE_GID: u32 = 1000;
/// Where the worker binary appears inside.
pub(crate) const WORKER_INSIDE: &str = "/airlock/bin/airlock-worker";
/// Where the task input appears inside.
pub(crate) const INPUT_INSIDE: &str = "/airlock/input.json";
/// The events fifo the worker creates (in a small writable tmpfs).
pub(crate) const EVENTS_INSIDE: &str = "/airlock/run/events";
/// The sandbox's working directory and home.
pub(crate) const SCRATCH_INSIDE: &str = "/scratch";
/// The hostname inside.
pub(crate) const HOSTNAME: &str = "airlock-sandbox";
/// Size of the tmpfs holding the events fifo.
const RUN_TMPFS_BYTES: u64 = 1 << 20;

/// Top-level paths that are directories or (on merged-/usr systems) symlinks into /usr.
const ROOT_PATHS: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// What programs need from the host's /etc, bound read-only when present. Only the
/// certificates and the OpenSSL configuration of /etc/ssl, never /etc/ssl/private.
const ETC_PATHS: [&str; 9] = [
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/nsswitch.conf",
];

/// What one host path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostEntry {
    Missing,
    /// A symlink, with its target as written.
    Symlink(PathBuf),
    Dir,
    File,
}

/// The parts of the host file system the sandbox sees, probed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostLayout {
    pub roots: Vec<(&'static str, HostEntry)>,
    pub etc: Vec<(&'static str, HostEntry)>,
}

impl HostLayout {
    /// Looks at the host's top-level library directories and the /etc entries.
    pub(crate) fn probe() -> Self {
        Self {
            roots: ROOT_PATHS
                .iter()
                .map(|p| (*p, probe_entry(Path::new(p))))
                .collect(),
            etc: ETC_PATHS
                .iter()
                .map(|p| (*p, probe_entry(Path::new(p))))
                .collect(),
        }
    }
}

fn probe_entry(path: &Path) -> HostEntry {
    match fs::symlink_metadata(path) {
        Err(_) => HostEntry::Missing,
        Ok(meta) if meta.file_type().is_symlink() => match fs::read_link(path) {
            Ok(target) => HostEntry::Symlink(target),
            Err(_) => HostEntry::Missing,
        },
        Ok(meta) if meta.is_dir() => HostEntry::Dir,
        Ok(_) => HostEntry::File,
    }
}

/// Host paths of one sandbox's files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SandboxPaths<'a> {
    pub input: &'a Path,
    pub passwd: &'a Path,
    pub group: &'a Path,
    pub scratch: &'a Path,
    pub worker: &'a Path,
}

/// The complete environment of the sandbox ([`environment`]), with this runtime's paths.
pub(crate) fn sandbox_env(request: &SandboxRequest) -> Vec<(String, String)> {
    environment(
        request,
        &Layout {
            path: "/usr/local/bin:/usr/bin:/bin",
            home: SCRATCH_INSIDE,
            input: INPUT_INSIDE,
            events: Some(EVENTS_INSIDE),
        },
    )
}

/// The arguments of `bwrap` (without the program name) that run the worker with
/// `command` in a fresh sandbox. `tmp_bytes` caps the sandbox's /tmp.
pub(crate) fn bwrap_args(
    host: &HostLayout,
    paths: &SandboxPaths<'_>,
    env: &[(String, String)],
    command: &[String],
    tmp_bytes: u64,
) -> Vec<OsString> {
    let mut args = Args::default();
    // Namespaces and privileges. The worker is the pid namespace's init (`--as-pid-1`,
    // it reaps what the program leaves behind): bwrap's own init would exit after telling
    // bwrap the status and be left for the host's init to reap, one orphan per sandbox.
    args.flags(&[
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
    ]);
    args.opt("--cap-drop", "ALL");
    args.opt("--uid", INSIDE_UID.to_string());
    args.opt("--gid", INSIDE_GID.to_string());
    args.opt("--hostname", HOSTNAME);

    // Environment: nothing of the orchestrator's.
    args.flags(&["--clearenv"]);
    for (name, value) in env {
        args.push("--setenv");
        args.push(name);
        args.push(value);
    }

    // The system, read-only.
    args.bind("--ro-bind", Path::new("/usr"), "/usr");
    for (path, entry) in host.roots.iter().chain(host.etc.iter()) {
        match entry {
            HostEntry::Missing => {}
            HostEntry::Symlink(target) => {
                args.push("--symlink");
                args.push(target.as_os_str());
                args.push(*path);
            }
            HostEntry::Dir | HostEntry::File => args.bind("--ro-bind", Path::new(path), path),
        }
    }
    args.bind("--ro-bind", paths.passwd, "/etc/passwd");
    args.bind("--ro-bind", paths.group, "/etc/group");

    // Fresh kernel file systems and private temporary space.
    args.opt("--proc", "/proc");
    args.opt("--dev", "/dev");
    args.opt("--size", tmp_bytes.to_string());
    args.opt("--tmpfs", "/tmp");

    // The platform's files.
    args.opt("--dir", "/airlock");
    args.bind("--ro-bind", paths.input, INPUT_INSIDE);
    args.opt("--size", RUN_TMPFS_BYTES.to_string());
    args.opt("--tmpfs", "/airlock/run");
    args.bind("--ro-bind", paths.worker, WORKER_INSIDE);
    args.bind("--bind", paths.scratch, SCRATCH_INSIDE);

    // The root (and the directories bwrap made on it, like /etc) becomes read-only; the
    // mounts on it (/tmp, /airlock/run, /scratch) keep their own flags.
    args.opt("--remount-ro", "/");
    args.opt("--chdir", SCRATCH_INSIDE);

    args.push("--");
    args.push(WORKER_INSIDE);
    args.push("--");
    for part in command {
        args.push(part);
    }
    args.0
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, arg: impl Into<OsString>) {
        self.0.push(arg.into());
    }

    fn flags(&mut self, flags: &[&str]) {
        for flag in flags {
            self.push(*flag);
        }
    }

    fn opt(&mut self, flag: &str, value: impl Into<OsString>) {
        self.push(flag);
        self.push(value);
    }

    fn bind(&mut self, flag: &str, source: &Path, dest: &str) {
        self.push(flag);
        self.push(source.as_os_str());
        self.push(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::spec::Resources;
    use airlock_core::{EvaluationId, RunId, TeamId};
    use std::collections::BTreeMap;

    fn request() -> SandboxRequest {
        SandboxRequest {
            run_id: RunId::new(),
            evaluation_id: EvaluationId::new(),
            team_id: TeamId::new(),
            attempt: 1,
            task_id: "t1".into(),
            epoch: 2,
            image: "python:3.12".into(),
            command: vec!["python3".into(), "main.py".into()],
            env: BTreeMap::from([("MODEL".to_owned(), "small".to_owned())]),
            resources: Resources::default(),
            timeout_secs: 90,
            input: serde_json::json!({"q": 1}),
            worker_env: Vec::new(),
        }
    }

    fn merged_usr_host() -> HostLayout {
        HostLayout {
            roots: vec![
                ("/bin", HostEntry::Symlink("usr/bin".into())),
                ("/sbin", HostEntry::Symlink("usr/sbin".into())),
                ("/lib", HostEntry::Symlink("usr/lib".into())),
                ("/lib32", HostEntry::Missing),
                ("/lib64", HostEntry::Dir),
                ("/libx32", HostEntry::Missing),
            ],
            etc: vec![
                ("/etc/ld.so.cache", HostEntry::File),
                (
                    "/etc/localtime",
                    HostEntry::Symlink("/usr/share/zoneinfo/UTC".into()),
                ),
                ("/etc/ssl/certs", HostEntry::Dir),
                ("/etc/nsswitch.conf", HostEntry::Missing),
            ],
        }
    }

    fn paths() -> SandboxPaths<'static> {
        SandboxPaths {
            input: Path::new("/state/sb/input.json"),
            passwd: Path::new("/state/sb/passwd"),
            group: Path::new("/state/sb/group"),
            scratch: Path::new("/state/sb/scratch"),
            worker: Path::new("/opt/airlock/airlock-worker"),
        }
    }

    fn args_for(request: &SandboxRequest) -> Vec<String> {
        bwrap_args(
            &merged_usr_host(),
            &paths(),
            &sandbox_env(request),
            &request.command,
            64 << 20,
        )
        .into_iter()
        .map(|a| a.into_string().expect("utf-8 argument"))
        .collect()
    }

    /// The (flag, operands) of every option before the command.
    fn options(args: &[String]) -> Vec<(String, Vec<String>)> {
        let end = args
            .iter()
            .position(|a| a == "--")
            .expect("a -- before the command");
        let mut out = Vec::new();
        let mut i = 0;
        while i < end {
            let flag = args[i].clone();
            let arity = match flag.as_str() {
                "--setenv" | "--ro-bind" | "--bind" | "--symlink" => 2,
                "--unshare-all" | "--unshare-user" | "--disable-userns" | "--die-with-parent"
                | "--new-session" | "--as-pid-1" | "--clearenv" => 0,
                _ => 1,
            };
            out.push((flag, args[i + 1..i + 1 + arity].to_vec()));
            i += 1 + arity;
        }
        assert_eq!(i, end, "options parse exactly up to the command");
        out
    }

    #[test]
    fn isolation_flags_come_first() {
        let args = args_for(&request());
        let head: Vec<&str> = args.iter().take(14).map(String::as_str).collect();
        assert_eq!(
            head,
            [
                "--unshare-all",
                "--unshare-user",
                "--disable-userns",
                "--die-with-parent",
                "--new-session",
                "--as-pid-1",
                "--cap-drop",
                "ALL",
                "--uid",
                "1000",
                "--gid",
                "1000",
                "--hostname",
                "airlock-sandbox"
            ]
        );
        assert!(!args.iter().any(|a| a == "--share-net"));
    }

    #[test]
    fn environment_is_exactly_the_allowed_set() {
        let request = request();
        let args = args_for(&request);
        let opts = options(&args);
        let clearenv = opts
            .iter()
            .position(|(f, _)| f == "--clearenv")
            .expect("--clearenv");
        let setenvs: Vec<(usize, String, String)> = opts
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| f == "--setenv")
            .map(|(i, (_, v))| (i, v[0].clone(), v[1].clone()))
            .collect();
        assert!(
            setenvs.iter().all(|(i, _, _)| *i > clearenv),
            "--clearenv precedes every --setenv"
        );
        let env: Vec<(String, String)> = setenvs.into_iter().map(|(_, k, v)| (k, v)).collect();
        let expected: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME", "/scratch".to_owned()),
            ("TMPDIR", "/tmp".to_owned()),
            ("LANG", "C.UTF-8".to_owned()),
            ("MODEL", "small".to_owned()),
            ("AIRLOCK_RUN_ID", request.run_id.to_string()),
            ("AIRLOCK_EVALUATION_ID", request.evaluation_id.to_string()),
            ("AIRLOCK_TASK_ID", "t1".to_owned()),
            ("AIRLOCK_EPOCH", "2".to_owned()),
            ("AIRLOCK_TASK_INPUT", "/airlock/input.json".to_owned()),
            ("AIRLOCK_EVENTS", "/airlock/run/events".to_owned()),
            ("AIRLOCK_WORKER_TIMEOUT_SECS", "90".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn only_allowed_host_paths_are_mounted() {
        let args = args_for(&request());
        let opts = options(&args);
        let binds: Vec<(String, String, String)> = opts
            .iter()
            .filter(|(f, _)| f == "--ro-bind" || f == "--bind")
            .map(|(f, v)| (f.clone(), v[0].clone(), v[1].clone()))
            .collect();
        let expected = [
            ("--ro-bind", "/usr", "/usr"),
            ("--ro-bind", "/lib64", "/lib64"),
            ("--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"),
            ("--ro-bind", "/etc/ssl/certs", "/etc/ssl/certs"),
            ("--ro-bind", "/state/sb/passwd", "/etc/passwd"),
            ("--ro-bind", "/state/sb/group", "/etc/group"),
            ("--ro-bind", "/state/sb/input.json", "/airlock/input.json"),
            (
                "--ro-bind",
                "/opt/airlock/airlock-worker",
                "/airlock/bin/airlock-worker",
            ),
            ("--bind", "/state/sb/scratch", "/scratch"),
        ];
        let expected: Vec<(String, String, String)> = expected
            .iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect();
        assert_eq!(binds, expected);
        // The only writable bind is the scratch directory.
        assert_eq!(binds.iter().filter(|(f, _, _)| f == "--bind").count(), 1);
        for forbidden in [
            "/home",
            "/root",
            "/var",
            "/tmp",
            "/state",
            "/etc/ssl/private",
            "/sys",
        ] {
            assert!(
                !binds.iter().any(|(_, src, _)| src == forbidden),
                "{forbidden} must not be bound"
            );
        }
        assert!(
            !opts
                .iter()
                .any(|(f, _)| f == "--dev-bind" || f == "--bind-try")
        );
    }

    #[test]
    fn host_symlinks_become_symlinks_and_missing_paths_are_skipped() {
        let args = args_for(&request());
        let opts = options(&args);
        let links: Vec<(String, String)> = opts
            .iter()
            .filter(|(f, _)| f == "--symlink")
            .map(|(_, v)| (v[0].clone(), v[1].clone()))
            .collect();
        assert_eq!(
            links,
            [
                ("usr/bin", "/bin"),
                ("usr/sbin", "/sbin"),
                ("usr/lib", "/lib"),
                ("/usr/share/zoneinfo/UTC", "/etc/localtime")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(
            !args
                .iter()
                .any(|a| a == "/lib32" || a == "/libx32" || a == "/etc/nsswitch.conf")
        );
    }

    #[test]
    fn private_mounts_and_read_only_root() {
        let args = args_for(&request());
        let opts = options(&args);
        let find = |flag: &str, value: &str| {
            opts.iter()
                .position(|(f, v)| f == flag && v.first().map(String::as_str) == Some(value))
                .unwrap_or_else(|| panic!("{flag} {value} missing"))
        };
        find("--proc", "/proc");
        find("--dev", "/dev");
        let tmp = find("--tmpfs", "/tmp");
        assert_eq!(
            opts[tmp - 1],
            ("--size".to_owned(), vec![(64u64 << 20).to_string()])
        );
        find("--dir", "/airlock");
        find("--tmpfs", "/airlock/run");
        let remount = find("--remount-ro", "/");
        let last_mount = opts
            .iter()
            .rposition(|(f, _)| {
                matches!(
                    f.as_str(),
                    "--ro-bind" | "--bind" | "--tmpfs" | "--proc" | "--dev" | "--symlink"
                )
            })
            .expect("mounts");
        assert!(
            remount > last_mount,
            "the root is made read-only after every mount"
        );
        assert_eq!(
            opts.last(),
            Some(&("--chdir".to_owned(), vec!["/scratch".to_owned()]))
        );
    }

    #[test]
    fn the_worker_runs_the_command_verbatim() {
        let mut request = request();
        request.command = vec!["sh".into(), "-c".into(), "--setenv X y; echo $HOME".into()];
        let args = args_for(&request);
        let end = args.iter().position(|a| a == "--").expect("--");
        assert_eq!(
            args[end..],
            [
                "--",
                "/airlock/bin/airlock-worker",
                "--",
                "sh",
                "-c",
                "--setenv X y; echo $HOME"
            ]
        );
    }
}

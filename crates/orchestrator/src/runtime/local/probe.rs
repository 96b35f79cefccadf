//! The start-up check that bubblewrap exists and can build a sandbox like ours on this
//! host, as the user the sandboxes will run as.

use super::LocalConfig;
use super::args::{HostEntry, HostLayout, WORKER_INSIDE};
use super::procfs;
use crate::runtime::RuntimeError;
use std::os::unix::process::CommandExt;
use std::time::Duration;

/// Checks that bwrap exists and can build a sandbox like ours here, as the user the
/// sandboxes will run as.
pub(crate) fn probe_bwrap(
    config: &LocalConfig,
    host: &HostLayout,
    uid: Option<u32>,
) -> Result<(), RuntimeError> {
    let bwrap = &config.bwrap_path;
    if !bwrap.is_file() {
        return Err(RuntimeError::Failed(format!(
            "bubblewrap not found at {}: install the Debian package `bubblewrap` (apt-get install bubblewrap)",
            bwrap.display()
        )));
    }
    let mut args: Vec<std::ffi::OsString> = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .iter()
    .map(Into::into)
    .collect();
    for (path, entry) in &host.roots {
        match entry {
            HostEntry::Symlink(target) => {
                args.extend([
                    "--symlink".into(),
                    target.clone().into_os_string(),
                    (*path).into(),
                ]);
            }
            HostEntry::Dir => args.extend(["--ro-bind".into(), (*path).into(), (*path).into()]),
            HostEntry::File | HostEntry::Missing => {}
        }
    }
    args.extend(
        ["--proc", "/proc", "--dev", "/dev", "--ro-bind"]
            .iter()
            .map(Into::into),
    );
    args.push(config.worker_path.clone().into_os_string());
    args.extend(
        [WORKER_INSIDE, "--remount-ro", "/", "--", "true"]
            .iter()
            .map(Into::into),
    );

    let mut command = std::process::Command::new(bwrap);
    command
        .args(&args)
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null());
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let output = command.output().map_err(|e| {
        RuntimeError::Failed(format!(
            "cannot run bubblewrap at {}: {e} (Debian package `bubblewrap`)",
            bwrap.display()
        ))
    })?;
    if !output.status.success() {
        return Err(RuntimeError::Failed(format!(
            "bubblewrap at {} cannot create a sandbox here ({}): {}. The local runtime needs bubblewrap >= 0.8 \
             (Debian package `bubblewrap`), unprivileged user namespaces (user.max_user_namespaces > 0), and the \
             worker binary and state directory readable by the sandbox uids",
            bwrap.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Kills whatever still runs as `uid` until nothing does, for at most `grace`
/// (blocking; used at start-up only).
pub(crate) fn reap_uid(uid: u32, grace: Duration) {
    let deadline = std::time::Instant::now() + grace;
    loop {
        let pids = procfs::pids_of_uid(uid);
        if pids.is_empty() || std::time::Instant::now() >= deadline {
            return;
        }
        for pid in pids {
            procfs::sigkill(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

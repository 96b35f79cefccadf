//! The on-disk state of sandboxes: `<state_dir>/<name>/` (root-owned, 0711) with
//! `scratch/` (the sandbox's, 0700), `input.json` and `meta.json`, which lets a restarted
//! orchestrator find, stop and remove what an earlier process left. The `/etc/passwd` and
//! `/etc/group` every sandbox sees are the same for all, written once per state directory
//! (`.passwd`, `.group`; names starting with a dot are never sandboxes).

use airlock_core::{EvaluationId, RunId, TeamId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::args::{INSIDE_GID, INSIDE_UID, SCRATCH_INSIDE};

const META: &str = "meta.json";
const STOPPED: &str = "stopped";

/// What is recorded about a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub name: String,
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub team_id: TeamId,
    pub attempt: u32,
    pub task_id: String,
    pub image: String,
    pub created: DateTime<Utc>,
    /// The host pid of the sandbox's bwrap process, once started.
    pub pid: Option<u32>,
    /// Its start time, to tell it from a later process with the same pid.
    pub pid_start: Option<u64>,
    /// The pool uid it runs as; `None` when it runs as the orchestrator's user.
    pub host_uid: Option<u32>,
}

/// Whether `name` can be a sandbox directory name (and so cannot escape the state dir).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Creates (or checks) the state directory: owned by this process's user, mode 0711 so
/// sandbox uids can reach their own files by name but list nothing. When `others_search`
/// is set (sandboxes run as other uids), every ancestor must be searchable by others.
pub(crate) fn prepare_state_dir(path: &Path, others_search: bool) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(path)
        .map_err(|e| format!("cannot create the state directory {}: {e}", path.display()))?;
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return Err(format!(
            "the state directory {} belongs to uid {}, not to this process (uid {euid})",
            path.display(),
            meta.uid()
        ));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o711))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    if others_search {
        let absolute = fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for ancestor in absolute.ancestors().skip(1) {
            let mode = fs::metadata(ancestor).map(|m| m.mode()).unwrap_or(0);
            if mode & 0o001 == 0 {
                return Err(format!(
                    "{} is not searchable by other users, so sandbox uids cannot reach the state directory {} \
                     below it; choose another state directory or `chmod o+x` it",
                    ancestor.display(),
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Writes the account files every sandbox of `state_dir` sees (atomically, readable by
/// every sandbox uid).
pub(crate) fn write_account_files(state_dir: &Path) -> io::Result<()> {
    let passwd = format!(
        "airlock:x:{INSIDE_UID}:{INSIDE_GID}:airlock sandbox:{SCRATCH_INSIDE}:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    );
    let group = format!("airlock:x:{INSIDE_GID}:\nnogroup:x:65534:\n");
    for (name, text) in [(PASSWD, passwd), (GROUP, group)] {
        let tmp = state_dir.join(format!("{name}.tmp"));
        fs::write(&tmp, text)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
        fs::rename(&tmp, state_dir.join(name))?;
    }
    Ok(())
}

const PASSWD: &str = ".passwd";
const GROUP: &str = ".group";

/// The directory of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct SandboxDir {
    root: PathBuf,
    state_dir: PathBuf,
}

impl SandboxDir {
    pub(crate) fn new(state_dir: &Path, name: &str) -> Self {
        Self {
            root: state_dir.join(name),
            state_dir: state_dir.to_owned(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn scratch(&self) -> PathBuf {
        self.root.join("scratch")
    }

    pub(crate) fn input(&self) -> PathBuf {
        self.root.join("input.json")
    }

    /// Shared by every sandbox of the state directory ([`write_account_files`]).
    pub(crate) fn passwd(&self) -> PathBuf {
        self.state_dir.join(PASSWD)
    }

    /// Shared by every sandbox of the state directory ([`write_account_files`]).
    pub(crate) fn group(&self) -> PathBuf {
        self.state_dir.join(GROUP)
    }

    pub(crate) fn exists(&self) -> bool {
        self.root.exists()
    }

    /// Creates the directory and its files. `owner` is the sandbox's host uid/gid when it
    /// has its own; the scratch directory becomes theirs and the input readable by them.
    pub(crate) fn prepare(
        &self,
        owner: Option<(u32, u32)>,
        input: &serde_json::Value,
    ) -> io::Result<()> {
        fs::DirBuilder::new().mode(0o711).create(&self.root)?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o711))?;

        let scratch = self.scratch();
        fs::DirBuilder::new().mode(0o700).create(&scratch)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&scratch, Some(uid), Some(gid))?;
        }
        fs::set_permissions(&scratch, fs::Permissions::from_mode(0o700))?;

        let input_path = self.input();
        fs::write(
            &input_path,
            serde_json::to_vec(input).map_err(io::Error::other)?,
        )?;
        match owner {
            Some((_, gid)) => {
                std::os::unix::fs::chown(&input_path, None, Some(gid))?;
                fs::set_permissions(&input_path, fs::Permissions::from_mode(0o640))?;
            }
            None => fs::set_permissions(&input_path, fs::Permissions::from_mode(0o600))?,
        }

        Ok(())
    }

    /// Writes `meta.json` atomically.
    pub(crate) fn write_meta(&self, meta: &Meta) -> io::Result<()> {
        let tmp = self.root.join(".meta.json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(meta).map_err(io::Error::other)?,
        )?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        fs::rename(&tmp, self.root.join(META))
    }

    pub(crate) fn read_meta(&self) -> io::Result<Meta> {
        let bytes = fs::read(self.root.join(META))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Records that `stop` ended this sandbox (for sandboxes known only on disk).
    pub(crate) fn mark_stopped(&self) {
        if let Err(e) = fs::write(self.root.join(STOPPED), b"") {
            tracing::warn!(dir = %self.root.display(), error = %e, "cannot record the stop");
        }
    }

    pub(crate) fn was_stopped(&self) -> bool {
        self.root.join(STOPPED).exists()
    }

    /// Deletes the directory with everything in it (blocking); a missing one is fine.
    pub(crate) fn delete(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(first) => {
                // Without root, a directory the sandbox made unwritable blocks the delete:
                // give the owner (us) access back and retry.
                make_owner_accessible(&self.root);
                fs::remove_dir_all(&self.root).map_err(|_| first)
            }
        }
    }
}

fn make_owner_accessible(dir: &Path) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() | 0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            make_owner_accessible(&entry.path());
        }
    }
}

/// Every sandbox directory under `state_dir` with a readable `meta.json`.
pub(crate) fn list(state_dir: &Path) -> io::Result<Vec<(SandboxDir, Meta)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(state_dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !valid_name(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = SandboxDir::new(state_dir, &name);
        match dir.read_meta() {
            Ok(meta) if meta.name == name => found.push((dir, meta)),
            Ok(_) => tracing::warn!(sandbox = %name, "meta.json names another sandbox; ignored"),
            Err(e) => {
                tracing::debug!(sandbox = %name, error = %e, "no readable meta.json; ignored")
            }
        }
    }
    found.sort_by(|a, b| {
        a.1.created
            .cmp(&b.1.created)
            .then_with(|| a.1.name.cmp(&b.1.name))
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("airlock-state-test-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn names_cannot_escape() {
        assert!(valid_name("airlock-0123abcd-1"));
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn prepares_lists_and_deletes_a_sandbox_dir() {
        let state = temp_dir();
        write_account_files(&state).expect("account files");
        let dir = SandboxDir::new(&state, "airlock-x-1");
        dir.prepare(None, &serde_json::json!({"a": 1}))
            .expect("prepare");
        assert_eq!(
            fs::metadata(dir.root()).expect("root").mode() & 0o777,
            0o711
        );
        assert_eq!(
            fs::metadata(dir.scratch()).expect("scratch").mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::read_to_string(dir.input()).expect("input"),
            r#"{"a":1}"#
        );
        assert!(
            fs::read_to_string(dir.passwd())
                .expect("passwd")
                .starts_with("airlock:x:1000:1000:")
        );

        // Without meta.json the directory is not a sandbox yet.
        assert!(list(&state).expect("list").is_empty());
        let meta = Meta {
            name: "airlock-x-1".into(),
            run_id: RunId::new(),
            evaluation_id: EvaluationId::new(),
            team_id: TeamId::new(),
            attempt: 1,
            task_id: "t".into(),
            image: "img".into(),
            created: Utc::now(),
            pid: Some(42),
            pid_start: Some(7),
            host_uid: None,
        };
        dir.write_meta(&meta).expect("meta");
        let listed = list(&state).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1, meta);

        assert!(!dir.was_stopped());
        dir.mark_stopped();
        assert!(dir.was_stopped());
        dir.delete().expect("delete");
        dir.delete().expect("delete again");
        assert!(!dir.exists());
        fs::remove_dir_all(&state).expect("cleanup");
    }
}

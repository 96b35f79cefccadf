//! `--install <dir>`: the worker copies itself into a directory (an emptyDir shared with
//! the pod's main container), written under a temporary name and renamed, executable.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Installs the running executable as `<dir>/airlock-worker`; returns the exit code.
pub fn install(dir: &Path) -> i32 {
    match copy_self(dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("airlock-worker: cannot install into {}: {e}", dir.display());
            1
        }
    }
}

fn copy_self(dir: &Path) -> std::io::Result<()> {
    let source = std::env::current_exe()?;
    let partial = dir.join(".airlock-worker.partial");
    std::fs::copy(&source, &partial)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o555))?;
    std::fs::rename(&partial, dir.join("airlock-worker"))
}

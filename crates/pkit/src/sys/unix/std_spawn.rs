//! Spawning through `std::process::Command`, which uses `posix_spawn` (a
//! vfork-style clone that does not copy the parent's address space), for
//! the platforms without pkit's own spawner (every one but Linux).

use std::ffi::OsStr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

use crate::sys::{ChildIo, SpawnError, SpawnSpec};

/// Spawns `spec` into process group `pgid` (0: a new group led by the
/// child) and returns its pid. The caller owns the unreaped child.
pub(crate) fn spawn(spec: &SpawnSpec, pgid: i32) -> Result<i32, SpawnError> {
    let mut cmd = std::process::Command::new(OsStr::from_bytes(spec.path.as_bytes()));
    if let Some(arg0) = spec.argv.first() {
        cmd.arg0(OsStr::from_bytes(arg0.as_bytes()));
    }
    for arg in spec.argv.iter().skip(1) {
        cmd.arg(OsStr::from_bytes(arg.as_bytes()));
    }
    cmd.env_clear();
    for kv in &spec.envp {
        let bytes = kv.as_bytes();
        if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
            cmd.env(
                OsStr::from_bytes(&bytes[..eq]),
                OsStr::from_bytes(&bytes[eq + 1..]),
            );
        }
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(OsStr::from_bytes(dir.as_bytes()));
    }
    cmd.stdin(stdio(&spec.stdin)?)
        .stdout(stdio(&spec.stdout)?)
        .stderr(stdio(&spec.stderr)?);
    cmd.process_group(pgid);
    let child = cmd.spawn().map_err(SpawnError::Exec)?;
    // Dropping std's Child neither kills nor reaps it; we own it by pid.
    Ok(child.id() as i32)
}

fn stdio(io: &ChildIo) -> Result<std::process::Stdio, SpawnError> {
    Ok(match io {
        ChildIo::Inherit => std::process::Stdio::inherit(),
        ChildIo::Fd(fd) => {
            let dup: OwnedFd = fd.try_clone().map_err(SpawnError::Os)?;
            std::process::Stdio::from(dup)
        }
        ChildIo::SameAsStdout => {
            return Err(SpawnError::Os(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "merge_stderr is not supported on this platform yet",
            )))
        }
        ChildIo::Null(fd) => {
            // SAFETY: the shared /dev/null descriptor stays open for the
            // life of the process; it is only borrowed to be duplicated.
            let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
            std::process::Stdio::from(fd.try_clone_to_owned().map_err(SpawnError::Os)?)
        }
    })
}

//! Spawning through `std::process::Command`, which uses `posix_spawn` (a
//! vfork-style clone that does not copy the parent's address space) when
//! no `pre_exec` hook is set.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
#[cfg(target_os = "linux")]
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

use crate::sys::{ChildIo, SpawnError, SpawnSpec};

/// How the child is placed.
pub(crate) enum Placement {
    /// In the process group `pgid` (0: a new group led by the child).
    ProcessGroup(i32),
    /// Joins cgroups itself before exec by writing to the given open
    /// `cgroup.procs` files (forces a fork; used only when clone3 is
    /// refused).
    #[cfg(target_os = "linux")]
    JoinCgroups(Vec<RawFd>),
}

/// Spawns `spec` and returns its pid. The caller owns the unreaped child.
pub(crate) fn spawn(spec: &SpawnSpec, placement: Placement) -> Result<i32, SpawnError> {
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
    match placement {
        Placement::ProcessGroup(pgid) => {
            cmd.process_group(pgid);
        }
        #[cfg(target_os = "linux")]
        Placement::JoinCgroups(procs_fds) => {
            // SAFETY: the hook runs in the forked child before exec and
            // makes async-signal-safe write(2)s to fds opened (and kept
            // open) by the parent; it allocates nothing (the Vec was built
            // before the fork and is only read).
            unsafe {
                cmd.pre_exec(move || {
                    for &fd in &procs_fds {
                        if libc::write(fd, b"0".as_ptr().cast(), 1) < 0 {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
    }
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
    })
}

//! This program's executable, run again by pkit before `main` as the
//! owner-death guard's launcher (`exec.rs`, `portable.rs`) and as the
//! portable backend's trampoline (`unix/trampoline.rs`): where it is, and
//! whether running it would give the new image other privileges than the
//! owner has.

use std::ffi::CString;
use std::io;

/// This program's executable, to run again.
pub(super) fn own_executable() -> io::Result<CString> {
    #[cfg(target_os = "linux")]
    return Ok(c"/proc/self/exe".to_owned());
    #[cfg(not(target_os = "linux"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::env::current_exe()?;
        CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
    }
}

/// Why running this program's executable again would give the new image
/// other privileges than this process has now, if it would: the file is
/// set-user-ID or set-group-ID (to another user or group than this
/// process's effective ones: executing it makes the file's owner the
/// effective user, whatever this process dropped since it started), or
/// this process runs in secure-execution mode (it gained privileges at its
/// own exec, by those bits or by file capabilities, which executing the
/// file again would grant anew). Neither the guard's launcher nor the
/// portable backend's trampoline may then be this executable: a
/// trampoline runs the child's program with the file owner's effective
/// user, and a guard runs privileged for an unprivileged owner. The guard
/// is then forked, and a new process group registered after `posix_spawn`
/// returns.
pub(super) fn exec_changes_credentials() -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let exe = own_executable().ok()?;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(exe.as_bytes()));
    let meta = std::fs::metadata(path).ok()?;
    // S_ISUID and S_ISGID (the same bits everywhere; mode_t is 16 bits
    // on macOS).
    let mode = meta.mode();
    if mode & 0o4000 != 0 && meta.uid() != rustix::process::geteuid().as_raw() {
        return Some(format!(
            "this program's executable is set-user-ID (user {}): running it again would change the effective user",
            meta.uid()
        ));
    }
    if mode & 0o2000 != 0 && meta.gid() != rustix::process::getegid().as_raw() {
        return Some(format!(
            "this program's executable is set-group-ID (group {}): running it again would change the effective group",
            meta.gid()
        ));
    }
    if secure_execution() {
        return Some(
            "this program runs in secure-execution mode (it gained privileges at its exec): running its executable again would grant them anew".into(),
        );
    }
    None
}

/// Whether this process was started in secure-execution mode.
fn secure_execution() -> bool {
    // Raw: rustix reads neither AT_SECURE nor issetugid.
    #[cfg(target_os = "linux")]
    // SAFETY: getauxval(3) reads this process's auxiliary vector.
    return unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    #[cfg(not(target_os = "linux"))]
    // SAFETY: issetugid(2) takes no argument and only answers.
    return unsafe { libc::issetugid() } != 0;
}

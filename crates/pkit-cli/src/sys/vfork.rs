//! A program that can't stop because it waits in `vfork(2)`: dash, and
//! other shells and C libraries' `posix_spawn`, start a command with
//! `vfork`, whose parent sleeps uninterruptibly (state `D`) until the
//! child execs or exits. A Ctrl-Z typed in that window stops the child
//! (not yet exec'd) and leaves the SIGTSTP pending at the parent, which
//! can act on it only once the child execs: never, while the child stays
//! stopped. The program is then neither running nor stopped (`D`, not
//! `T`), and the job is as stopped as if it were. Linux only (`/proc`);
//! elsewhere this answers "no".

#[cfg(target_os = "linux")]
use super::sig;

/// When `pid` (the program, a child of pkit) can't stop because of a
/// child stopped inside its `vfork`: the stop signal its job got.
///
/// - Single-threaded: the program sleeps in the kernel (`D`) with a stop
///   signal pending (SIGTSTP, SIGTTIN, SIGTTOU or SIGSTOP, in that order).
/// - Multi-threaded (a thread of it in `posix_spawn`/`vfork`, as Python,
///   Go or Java start programs): its other threads stopped (`T`) while
///   that one sleeps in the kernel (`D`), so the stop never completes and
///   `waitid` reports none; the pending stop signal if one is left, else
///   SIGTSTP (the group stop began, which only a job-control stop or
///   SIGSTOP begins, and SIGSTOP is not pkit's to undo either way).
///
/// Either way a stopped child of the program must be among `members()`
/// (its tree), which is listed only when the program's own state says
/// so (a process group's listing reads all of `/proc`). `None` otherwise
/// (a program in a disk wait whose child some other signal stopped is not
/// held by it).
#[cfg(target_os = "linux")]
pub fn held_by_stopped_child(pid: u32, members: &dyn Fn() -> Option<Vec<u32>>) -> Option<i32> {
    let by = match stat(pid)?.0 {
        'D' => pending_stop(pid)?,
        'T' if a_thread_in_the_kernel(pid) => pending_stop(pid).unwrap_or(sig::SIGTSTP),
        _ => return None,
    };
    members()?
        .iter()
        .any(|&m| m != pid && stat(m) == Some(('T', pid)))
        .then_some(by)
}

/// Not Linux: no `/proc` to tell it by.
#[cfg(not(target_os = "linux"))]
pub fn held_by_stopped_child(_pid: u32, _members: &dyn Fn() -> Option<Vec<u32>>) -> Option<i32> {
    None
}

/// Whether a thread of `pid` sleeps in the kernel (`D`).
#[cfg(target_os = "linux")]
fn a_thread_in_the_kernel(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                == Some("D")
        })
    })
}

/// The state letter and parent of `pid` (`orphan`'s reading of
/// `/proc/<pid>/stat`).
#[cfg(target_os = "linux")]
fn stat(pid: u32) -> Option<(char, u32)> {
    let (state, ppid, _) = super::orphan::read_stat(pid)?;
    Some((state, ppid as u32))
}

/// The first stop signal pending at `pid` (the process's shared queue,
/// where a signal to its group waits, or its thread's own).
#[cfg(target_os = "linux")]
pub(super) fn pending_stop(pid: u32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let pending =
        signal_mask(&status, "ShdPnd:").unwrap_or(0) | signal_mask(&status, "SigPnd:").unwrap_or(0);
    [sig::SIGTSTP, sig::SIGTTIN, sig::SIGTTOU, libc::SIGSTOP]
        .into_iter()
        .find(|&s| s > 0 && pending & (1u64 << (s - 1)) != 0)
}

/// A signal mask of a `/proc/<pid>/status` text (`field` with its colon:
/// `ShdPnd:`, `SigPnd:`...; bit `n - 1` is signal `n`), if it has one.
#[cfg(target_os = "linux")]
fn signal_mask(status: &str, field: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix(field))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

//! A process group's suspend and resume leave a member stopped by someone
//! else stopped, as cgroup v2 does (a thaw sends no SIGCONT) and Windows
//! does (a thread suspended by other means as well stays suspended).
//!
//! A process group's suspend is a SIGSTOP and its resume a SIGCONT, which
//! would continue every member, also one that someone else had stopped
//! before the suspend (a job control shell's `kill -STOP`, a debugger
//! stopping a child). So the suspend first notes the members stopped then
//! (pid and start time, from the group's listing and `/proc/<pid>/stat`),
//! and the resume, when it noted any, sends SIGCONT to the other members
//! one by one (a process group's signal otherwise: the common case costs
//! no listing at the resume). The listing is a suspend's and a resume's
//! cost only, never a start's or a signal's.
//!
//! A suspend of a suspended group does nothing, as a cgroup's freeze of a
//! frozen one: it would note every member, all stopped by the first, as
//! stopped by someone else, and the resume would continue none. The
//! state's check and the noting are one step: a suspend holds the
//! lifecycle lock's exclusive side and `freezing` throughout, and a resume
//! `freezing` while it takes the notes and marks the group not suspended.
//! A resume of a group not suspended does nothing either (an unfrozen
//! cgroup's thaw sends no SIGCONT): its members' stops are someone else's.
//!
//! A member's stop shows in its main thread's state (`/proc/<pid>/stat`),
//! unless that thread has ended while others run on (`Zl` in ps: the state
//! is `Z`); then in the other threads' (`/proc/<pid>/task/*/stat`), read
//! only for such a member (or a zombie).
//!
//! A suspend waits until the SIGSTOP has taken: on Linux, until every
//! thread of every member is stopped (or ended, or blocked where no fork
//! of its own is under way: see [`unstopped`]), re-listing the members
//! meanwhile ([`wait_stopped`](Container::wait_stopped)). A member's fork
//! caught by the SIGSTOP is then over: the kernel gives a child forked
//! while a signal goes to its process group that signal once the fork is
//! done, but it drops a SIGCONT the forking process ignores (the default)
//! from that set, not the stop before it. A resume during such a fork
//! then continued the parent, and the child, born with the stop, stayed
//! stopped for good (a pkit owner in the group waited for ever on its
//! start's child, stopped before its `exec`). Once every member is
//! stopped, no fork is in progress and the child is a member the resume's
//! SIGCONT reaches. A thread blocked in a fork's system call (state `D`:
//! on a kernel lock, such as a cgroup's for `CLONE_INTO_CGROUP`) has not
//! stopped either, unless it is a `vfork`'s wait for a child born
//! already.
//!
//! Limits, documented on `Group::resume`: Linux only (both process-group
//! backends; elsewhere nothing is noted and the resume continues every
//! member); a member stopped by someone else between the listing and the
//! suspend's SIGSTOP, or while the group is suspended, is continued (the
//! stop signals of the two can't be told apart), and one noted stopped but
//! continued by someone else just before that SIGSTOP stays stopped; a
//! start time is counted in clock ticks (1/100 s), so a noted pid reused
//! within one tick by another of the group's members would be left
//! stopped.

use std::io;
use std::sync::atomic::Ordering;

use super::container::{Container, Kind};
use super::unix::ptable::{self, Scope};
use super::ChildHandle;

/// Whom a process group's signal reaches, for one-by-one signals: every
/// listed member, by its scope, or by its handle (a former leader).
enum Reach {
    /// A member of `Scope`, signalled after a check that it still is one.
    Member(i32, Scope),
    /// A former leader (see `Kind::Pgroup::former`), through its handle.
    Former(std::sync::Arc<ChildHandle>),
}

impl Reach {
    fn pid(&self) -> i32 {
        match self {
            Reach::Member(pid, _) => *pid,
            Reach::Former(f) => f.pid(),
        }
    }
}

impl Container {
    /// A process group's suspend, under the lifecycle lock's exclusive
    /// side and `freezing` (see the module docs): nothing when `was`
    /// suspended already; else the note, then SIGSTOP. A SIGSTOP that
    /// fails (the suspend then fails and the group is not suspended) is
    /// undone: a member it stopped (a former leader, a session's member,
    /// each signalled on its own) would otherwise stay stopped, since a
    /// resume of a group not suspended continues nothing.
    pub(super) fn stop_pgroup(&self, was: bool) -> io::Result<()> {
        if was {
            return Ok(());
        }
        self.note_stopped_before();
        let stopped = self
            .signal_pgroup(libc::SIGSTOP)
            .and_then(|()| super::fault::io_check(super::fault::Point::SuspendStop));
        if stopped.is_err() {
            let _ = self.continue_pgroup();
        }
        stopped
    }

    /// Waits until the suspend's SIGSTOP has taken (see the module docs):
    /// every thread of every member stopped, ended, or blocked outside a
    /// fork of its own ([`unstopped`]), the members listed anew on each
    /// look. Not past [`SETTLE_FOR`] (a thread busy or blocked in the
    /// kernel), nor once the group is resumed or closed meanwhile, nor
    /// when the members can't be listed. Nothing off Linux.
    pub(super) async fn wait_stopped(&self) {
        if !cfg!(target_os = "linux") {
            return;
        }
        let settled = || {
            !self.suspended.load(Ordering::Acquire)
                || self.torn_down.load(Ordering::Acquire)
                || self
                    .reach()
                    .map_or(true, |r| r.iter().all(|r| !unstopped(r.pid())))
        };
        let deadline = tokio::time::Instant::now() + SETTLE_FOR;
        if !super::nap::poll_until(settled, Some(deadline)).await {
            tracing::debug!(target: "pkit", "a suspended group's member has not stopped after {SETTLE_FOR:?}");
        }
    }

    /// Notes the members stopped now (see the module docs), before a
    /// suspend's SIGSTOP. A listing that fails notes nothing: the resume
    /// then continues every member, as before this existed.
    fn note_stopped_before(&self) {
        let Some(stopped_before) = self.stopped_before() else {
            return;
        };
        let found = match cfg!(target_os = "linux") {
            true => self
                .reach()
                .map(|r| r.iter().filter_map(|r| stopped(r.pid())).collect())
                .unwrap_or_default(),
            false => Vec::new(),
        };
        *stopped_before.lock().unwrap_or_else(|e| e.into_inner()) = found;
    }

    /// A resume's SIGCONT: to the process group (and its session, former
    /// leaders: see `signal_pgroup`), or, when the suspend noted members
    /// stopped before it, to each other member. A listing that fails
    /// continues the whole group: better a member continued than a group
    /// left stopped.
    pub(super) fn continue_pgroup(&self) -> io::Result<()> {
        let Some(stopped_before) = self.stopped_before() else {
            return Ok(());
        };
        let before = std::mem::take(&mut *stopped_before.lock().unwrap_or_else(|e| e.into_inner()));
        if before.is_empty() {
            return self.signal_pgroup(libc::SIGCONT);
        }
        let Ok(reach) = self.reach() else {
            return self.signal_pgroup(libc::SIGCONT);
        };
        for r in reach {
            if stopped(r.pid()).is_some_and(|was| before.contains(&was)) {
                continue;
            }
            match r {
                Reach::Member(pid, scope) => {
                    self.signal_member(pid, scope, libc::SIGCONT);
                }
                Reach::Former(f) => {
                    let _ = f.signal(libc::SIGCONT);
                }
            }
        }
        Ok(())
    }

    /// The members a suspend noted (see `Kind::Pgroup::stopped_before`).
    fn stopped_before(&self) -> Option<&std::sync::Mutex<Vec<(i32, u64)>>> {
        match &self.kind {
            Kind::Pgroup { stopped_before, .. } => Some(stopped_before),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => None,
        }
    }

    /// Every member a process group's signal reaches (see `signal_pgroup`):
    /// the listed members of its scope (its session, for a pty group),
    /// the former leaders still running, and the members of a process group
    /// a former leader leads.
    fn reach(&self) -> io::Result<Vec<Reach>> {
        let mut reach: Vec<Reach> = Vec::new();
        if let Some(scope) = self.scope() {
            reach.extend(
                ptable::members(scope)?
                    .into_iter()
                    .map(|p| Reach::Member(p, scope)),
            );
        }
        for f in self.live_former_leaders() {
            let led = Scope::Pgroup(f.pid());
            if super::unix::pgroup::group_of(f.pid()) == Some(f.pid()) {
                for pid in ptable::members(led)? {
                    if pid != f.pid() && !reach.iter().any(|r| r.pid() == pid) {
                        reach.push(Reach::Member(pid, led));
                    }
                }
            }
            reach.retain(|r| r.pid() != f.pid());
            reach.push(Reach::Former(f));
        }
        Ok(reach)
    }
}

/// How long a suspend waits for its SIGSTOP to take (see
/// [`Container::wait_stopped`]).
const SETTLE_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a thread of `pid` has yet to take the suspend's stop (see
/// [`Container::wait_stopped`]). Every thread must be stopped (`T`, or `t`
/// by a tracer) or ended (`Z`, `X`, or its files gone), or blocked (`D`)
/// where no fork of its own can be under way ([`blocked_outside_fork`]);
/// a thread running, runnable or asleep (`R`, `S`) has not taken it (an
/// asleep one is woken by the stop). A thread list that can't be read
/// (the process is gone) has nothing left to stop.
///
/// Not merely "no thread running": a thread blocked for a moment inside
/// a fork (`D`, under load) and running again when its system call was
/// read (which then says `running`) was taken for stopped, and the wait
/// ended with the fork under way: the resume's SIGCONT came before the
/// child was born, and the child stayed stopped (seen in both
/// process-group backends, about one run of `suspend_mid_fork` in 30).
#[cfg(target_os = "linux")]
fn unstopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        .any(|tid| match thread_state(pid, tid) {
            None | Some(b'T' | b't' | b'Z' | b'X' | b'x') => false,
            Some(b'D') => !blocked_outside_fork(pid, tid),
            Some(_) => true,
        })
}

/// Whether blocked thread `tid` of `pid` was seen where no fork of its
/// own is under way (see [`unstopped`]): at a `vfork`'s wait for its
/// child, born already and a member (`wchan` `wait_for_vfork_done`, or
/// `kernel_clone` where that is inlined), or blocked in a system call
/// other than a fork's (`/proc/<pid>/task/<tid>/syscall`, which says
/// `running` for a thread no longer blocked, and is readable only where a
/// tracer could attach): once the stop is sent, a fork it begins is
/// restarted after the stop, and its thread stops first. Not so for a
/// fork's system call blocked on a kernel lock (such as a cgroup's, for
/// `CLONE_INTO_CGROUP`), nor when neither can be read.
///
/// Neither can be read without ptrace rights over `pid`: an owner that is
/// not root can't read them for a member that is not dumpable, and waits
/// out [`SETTLE_FOR`] while such a member waits for its stopped `vfork`
/// child (documented on `Group::suspend`). No sound sign of that wait is
/// readable without those rights: the thread's latest child stopped (`T`)
/// may be one it forked earlier (a shell's stopped subshell) while it is
/// now blocked inside another fork, whose child has no `/proc` entry yet;
/// only sharing the thread's memory (`kcmp`, `/proc/<pid>/maps`: ptrace
/// rights again) would tell a `vfork`'s child apart, and equal sizes and
/// resident pages (`/proc/<pid>/stat`) are a likeness, not the same
/// memory.
#[cfg(target_os = "linux")]
fn blocked_outside_fork(pid: i32, tid: i32) -> bool {
    let wchan =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/wchan")).unwrap_or_default();
    if matches!(
        wchan.trim(),
        "wait_for_vfork_done" | "kernel_clone" | "_do_fork" | "do_fork"
    ) {
        return true;
    }
    let Ok(call) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")) else {
        return false;
    };
    let Some(Ok(nr)) = call.split_ascii_whitespace().next().map(str::parse::<i64>) else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    let forks = [
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_fork,
        libc::SYS_vfork,
    ];
    #[cfg(not(target_arch = "x86_64"))]
    let forks = [libc::SYS_clone, libc::SYS_clone3];
    !forks.contains(&nr)
}

/// Not looked at off Linux (see [`Container::wait_stopped`]).
#[cfg(not(target_os = "linux"))]
fn unstopped(_pid: i32) -> bool {
    false
}

/// The state letter of thread `tid` of `pid` (`/proc/<pid>/task/<tid>/stat`).
#[cfg(target_os = "linux")]
fn thread_state(pid: i32, tid: i32) -> Option<u8> {
    let text = std::fs::read(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // The state follows the command name's closing `) `.
    let close = text.iter().rposition(|&b| b == b')')?;
    text.get(close + 2).copied()
}

/// `pid`'s identity (pid, start time) if it is stopped (state `T`: by a
/// signal; not `t`, a tracer's stop, which SIGCONT does not end). With
/// its main thread ended (`Z`), if another thread is (see the module
/// docs).
#[cfg(target_os = "linux")]
fn stopped(pid: i32) -> Option<(i32, u64)> {
    let fields = super::linux::procfs::stat_fields(pid).ok()?;
    match fields.first().map(String::as_str) {
        Some("T") => {}
        Some("Z") if other_thread_stopped(pid) => {}
        _ => return None,
    }
    // Field 22 of proc(5), the start time: `fields[19]`.
    Some((pid, fields.get(19)?.parse().ok()?))
}

/// Whether a thread of `pid` other than its main thread is stopped by a
/// signal (a stop reaches every thread; one may show it before another).
/// False for a zombie: its task directory lists the main thread alone, or
/// nothing.
#[cfg(target_os = "linux")]
fn other_thread_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&tid| tid != pid)
        .any(|tid| thread_state(pid, tid) == Some(b'T'))
}

/// Not noted off Linux (see the module docs).
#[cfg(not(target_os = "linux"))]
fn stopped(_pid: i32) -> Option<(i32, u64)> {
    None
}

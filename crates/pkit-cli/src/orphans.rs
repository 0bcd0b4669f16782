//! pkit as the child subreaper of the run: every descendant orphaned while
//! the run goes on is re-parented to pkit, which reaps it (so `--stats`'
//! rusage counts every descendant) and, when the run ends, kills any that
//! still live. Under the process-group mechanism that catches a descendant
//! that left the group with setsid once its parents are gone.
//!
//! Linux (`PR_SET_CHILD_SUBREAPER`) and FreeBSD
//! (`procctl(PROC_REAP_ACQUIRE)`, its children listed by the
//! `kern.proc.proc` sysctl: type-checked only). macOS has no subreaper, so
//! there orphans go to launchd, nothing here is looked for, and the report
//! says so (null) instead of counting nothing.

use std::time::{Duration, Instant};

use crate::sys::{self, sig};

/// The run's adopted orphans; `main` is the program (the library's child,
/// reaped by the library).
#[derive(Clone, Copy)]
pub struct Orphans {
    main: u32,
    guard: Option<u32>,
    /// pkit is the subreaper ([`Orphans::adopt`] succeeded).
    subreaper: bool,
}

/// This process's children (elsewhere: from the platform's process table).
#[cfg(not(target_os = "linux"))]
fn children() -> Vec<(i32, char, String)> {
    sys::children()
}

/// This process's children, with their state letters.
#[cfg(target_os = "linux")]
fn children() -> Vec<(i32, char, String)> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut f = stat[close + 1..].split_whitespace();
        let (Some(state), Some(ppid)) = (f.next(), f.next()) else {
            continue;
        };
        if ppid == me {
            out.push((pid, state.chars().next().unwrap_or('?'), comm));
        }
    }
    out
}

/// The process group and session of `pid` (Linux: `/proc/<pid>/stat`).
#[cfg(target_os = "linux")]
fn group_and_session(pid: &str) -> Option<(String, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace().skip(2);
    Some((f.next()?.to_string(), f.next()?.to_string()))
}

/// Whether child `pid` may be a run's program under process groups: it
/// leads a process group in pkit's session, as each run's program does
/// (where this can't be read: yes).
#[cfg(target_os = "linux")]
fn may_be_a_program(pid: i32) -> bool {
    let (Some((group, session)), Some((_, own))) = (
        group_and_session(&pid.to_string()),
        group_and_session("self"),
    ) else {
        return true;
    };
    group == pid.to_string() && session == own
}

#[cfg(not(target_os = "linux"))]
fn may_be_a_program(_pid: i32) -> bool {
    true
}

impl Orphans {
    /// For `pkit supervise`: the orphans of its runs, which come one after
    /// another. Which pid is a run's program is not known here (the
    /// library reaps those): none is taken for one by
    /// [`sweep`](Self::sweep), which runs between the runs and after the
    /// last; [`reap_exited_strays`](Self::reap_exited_strays) reaps only
    /// what can't be one.
    pub fn of_runs(subreaper: bool) -> Orphans {
        Orphans::new(0, subreaper)
    }

    /// While a run goes on ([`of_runs`](Self::of_runs)): reaps the adopted
    /// orphans that have exited and can't be a run's program. Under
    /// process groups a run's program leads a process group in pkit's
    /// session; an exited orphan that does too is left to the sweep after
    /// its run.
    pub fn reap_exited_strays(&self) {
        for (pid, state) in self.adopted() {
            if state == 'Z' && !may_be_a_program(pid) {
                sys::reap_if_exited(pid);
            }
        }
    }

    /// Becomes the subreaper; false if this platform or kernel can't.
    pub fn adopt() -> bool {
        sys::set_child_subreaper().is_ok()
    }

    /// After the program started (so the owner-death guard, if any, runs);
    /// `subreaper`: what [`Orphans::adopt`] returned.
    pub fn new(main: u32, subreaper: bool) -> Orphans {
        Orphans {
            main,
            guard: pkit::host_containment().guard.pid,
            subreaper,
        }
    }

    /// Children that are orphans of the run: not the program, not the
    /// owner-death guard.
    fn adopted(&self) -> Vec<(i32, char)> {
        if !self.subreaper {
            return Vec::new();
        }
        children()
            .into_iter()
            .filter(|(pid, _, comm)| {
                *pid as u32 != self.main && Some(*pid as u32) != self.guard && comm != "pkit-guard"
            })
            .map(|(pid, state, _)| (pid, state))
            .collect()
    }

    /// Reaps the adopted orphans that have exited.
    pub fn reap_exited(&self) {
        for (pid, state) in self.adopted() {
            if state == 'Z' {
                sys::reap_if_exited(pid);
            }
        }
    }

    /// After the group's teardown: kills and reaps every adopted orphan
    /// still alive (their own orphans come to pkit in turn), until none is
    /// left or 5 s have passed. Returns how many were killed (`None` when
    /// pkit is no subreaper: none was looked for) and whether none is left.
    pub fn sweep(&self) -> (Option<u64>, bool) {
        if !self.subreaper {
            return (None, true);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut killed = std::collections::HashSet::new();
        loop {
            let left = self.adopted();
            if left.is_empty() {
                return (Some(killed.len() as u64), true);
            }
            for &(pid, state) in &left {
                // Our own child, unreaped: its pid can't have been reused.
                if state != 'Z' && sys::kill(pid as u32, sig::SIGKILL).is_ok() {
                    killed.insert(pid);
                }
                sys::reap_if_exited(pid);
            }
            if Instant::now() > deadline {
                return (Some(killed.len() as u64), false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

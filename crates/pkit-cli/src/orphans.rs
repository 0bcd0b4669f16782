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
    /// pkit is the subreaper ([`Orphans::adopt`] succeeded).
    subreaper: bool,
}

/// How long an exited child of `pkit supervise` stays a zombie before
/// [`Orphans::reap_exited_strays`] may reap it: the library reaps a run's
/// program as soon as it exits, so a zombie that lingers this long is
/// none the library waits for.
pub const STRAY_AGE: Duration = Duration::from_secs(1);

/// The zombies [`Orphans::reap_exited_strays`] has seen and left, with
/// when it first saw each.
#[derive(Default)]
pub struct Strays(std::collections::HashMap<i32, Instant>);

/// A child of this process.
#[derive(Clone, Copy)]
struct Child {
    /// Its pid here.
    pid: i32,
    /// Its state letter.
    state: char,
    /// The number `/proc` gives it (its pid here but under another pid
    /// namespace's `/proc`: see `children`), by which its entry there is
    /// read.
    in_proc: i32,
    /// It has a child of its own (where that is not known: false).
    parent: bool,
    /// It leads a process group of its own (where that is not known:
    /// false; read on Linux only, where its group is killed with it).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    leader: bool,
}

/// This process's children (elsewhere: from the platform's process table).
#[cfg(not(target_os = "linux"))]
fn children() -> Vec<Child> {
    sys::children()
        .into_iter()
        .map(|(pid, state)| Child {
            pid,
            state,
            in_proc: pid,
            parent: false,
            leader: false,
        })
        .collect()
}

/// This process's children, with their state letters, by their pids in
/// this process's pid namespace.
///
/// `/proc` numbers processes in the pid namespace it was mounted for, which
/// need not be this process's (`unshare -pf` without `--mount-proc`): each
/// entry's parent pid is compared with this process's pid as `/proc`
/// numbers it (`/proc/self`), and each child found is named by its pid
/// here (its `NSpid` entry at this namespace's depth below `/proc`'s), as
/// `kill` and `waitpid` take it. Compared with the pid here, the children
/// of whatever process has that number out there were taken for ours (and
/// their numbers killed here), and ours were missed. Each is listed with
/// its number in `/proc` too, where its entry is read (its name: see
/// `is_guard`), whether it has a child of its own (every entry's parent
/// is read anyway), and whether it leads a process group (read with it).
#[cfg(target_os = "linux")]
fn children() -> Vec<Child> {
    let mut out = Vec::new();
    let Some(view) = ProcView::get() else {
        return out;
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    let mut parents = std::collections::HashSet::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 1..].split_whitespace();
        let (Some(state), Some(ppid), Some(group)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ppid != view.me {
            if let Ok(ppid) = ppid.parse::<i32>() {
                parents.insert(ppid);
            }
            continue;
        }
        let Some(here) = view.pid_here(pid) else {
            continue;
        };
        out.push(Child {
            pid: here,
            state: state.chars().next().unwrap_or('?'),
            in_proc: pid,
            parent: false,
            // `/proc` numbers the group as it numbers the child.
            leader: group.parse() == Ok(pid),
        });
    }
    for child in &mut out {
        child.parent = parents.contains(&child.in_proc);
    }
    out
}

/// How `/proc` numbers processes, seen from this process.
#[cfg(target_os = "linux")]
struct ProcView {
    /// This process's pid as `/proc` numbers it.
    me: String,
    /// How many pid namespaces this process's is below `/proc`'s (`None`:
    /// the same one, `/proc` numbers processes as this process does).
    depth: Option<usize>,
}

#[cfg(target_os = "linux")]
impl ProcView {
    /// This process's view, read once (`None` if `/proc` can't say which
    /// entry is this process): neither its pid namespace nor the `/proc`
    /// it reads changes while it runs.
    fn get() -> Option<&'static ProcView> {
        static VIEW: std::sync::OnceLock<Option<ProcView>> = std::sync::OnceLock::new();
        VIEW.get_or_init(ProcView::read).as_ref()
    }

    /// Whether `/proc` numbers processes as this process does.
    fn ours() -> bool {
        ProcView::get().is_some_and(|v| v.depth.is_none())
    }

    /// How deep below `/proc`'s pid namespace this process's is: by the
    /// length of its `NSpid` line (one pid per namespace from `/proc`'s
    /// inward), not by whether `/proc/self` names its pid here, which it
    /// may by chance under another namespace's `/proc` too (that `/proc`'s
    /// numbers were then read as this namespace's again). A kernel without
    /// `NSpid` (before 4.1) has no pid namespaces to tell apart there:
    /// the pid compared.
    fn read() -> Option<ProcView> {
        let me = std::fs::read_link("/proc/self").ok()?;
        let me = me.to_str()?.to_owned();
        let depth = match ns_pids("self") {
            Some(pids) => pids.len().checked_sub(1)?,
            None if me == std::process::id().to_string() => 0,
            None => return None,
        };
        Some(ProcView {
            me,
            depth: (depth > 0).then_some(depth),
        })
    }

    /// The pid here of the process `/proc` numbers `pid` (`None`: it has
    /// none here, or it is gone).
    fn pid_here(&self, pid: i32) -> Option<i32> {
        match self.depth {
            None => Some(pid),
            Some(depth) => ns_pids(&pid.to_string())?.get(depth).copied(),
        }
    }
}

/// The `NSpid` line of `/proc/<pid>/status`: the process's pid in each
/// pid namespace from `/proc`'s inward.
#[cfg(target_os = "linux")]
fn ns_pids(pid: &str) -> Option<Vec<i32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_ascii_whitespace()
        .map(|n| n.parse().ok())
        .collect()
}

/// The process group and session of `pid` (Linux: `/proc/<pid>/stat`).
#[cfg(target_os = "linux")]
fn group_and_session(pid: &str) -> Option<(String, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace().skip(2);
    Some((f.next()?.to_string(), f.next()?.to_string()))
}

/// Whether a child is named as pkit's owner-death guards are (every one
/// of them sets that name, however it was started); `in_proc`: its number
/// in `/proc` (see `children`: under another pid namespace's `/proc` its
/// pid here names another entry, or none, and a real guard read by it was
/// SIGKILLed at once, before it removed its owner's cgroup directories).
/// Our own unreaped child: its number there can't have been reused.
#[cfg(target_os = "linux")]
fn is_guard(in_proc: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{in_proc}/comm"))
        .is_ok_and(|c| c.trim_end() == "pkit-guard")
}

#[cfg(not(target_os = "linux"))]
fn is_guard(_in_proc: i32) -> bool {
    false
}

/// Whether the sweep may take adopted child `c` for an owner-death guard
/// and leave it time to end on its own: named as one, and with no child
/// of its own. A guard starts none (raw system calls only, after its
/// fork); a process that only took the name and started others had its
/// descendants multiply out of the sweep's sight meanwhile (a chain of
/// them, each the next one's parent, grown through the wait, was more
/// than the sweep's last second could kill one level at a time).
fn may_be_a_guard(c: &Child) -> bool {
    !c.parent && is_guard(c.in_proc)
}

/// SIGKILL to the process group adopted child `c` leads, if it leads one:
/// an orphan that left with `setsid` (or `setpgid`) took its descendants
/// along, and they were killed one level a turn, each turn a scan of
/// `/proc`; on a loaded machine a chain of them grew as fast, and outlived
/// the sweep. The group is named by `c`'s pid, which names no other while
/// `c` is our unreaped child.
#[cfg(target_os = "linux")]
fn kill_its_group(c: &Child) {
    if c.leader {
        let _ = sys::kill_group(c.pid as u32, sig::SIGKILL);
    }
}

#[cfg(not(target_os = "linux"))]
fn kill_its_group(_c: &Child) {}

/// Whether child `pid` may be a run's program under process groups: it
/// leads a process group in pkit's session, as each run's program does
/// (where this can't be read: yes).
#[cfg(target_os = "linux")]
fn may_be_a_program(pid: i32) -> bool {
    // `/proc` of another pid namespace: its numbers aren't ours (see
    // `children`), so this can't be read.
    if !ProcView::ours() {
        return true;
    }
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
    /// what can't be one. Only once pkit is the subreaper
    /// ([`adopt`](Self::adopt) succeeded).
    pub fn of_runs() -> Orphans {
        Orphans::new(0, true)
    }

    /// While a run goes on ([`of_runs`](Self::of_runs)): reaps the adopted
    /// orphans that have exited and can't be a run's program, and returns
    /// when to look again (`None`: nothing is waiting). A run's program is
    /// the library's child, whose exit status only the library may take:
    /// never reaped here are the `programs` (the pids of the runs started
    /// and not ended, from the supervisor's events), a zombie that leads a
    /// process group in pkit's session (as a program under process groups
    /// does; left to the sweep after its run), and a zombie not seen a
    /// zombie for [`STRAY_AGE`] already (`seen`, kept between calls): a
    /// program that left its group (`setpgid` into pkit's) and exited
    /// before its start event was read is reaped by the library by then.
    pub fn reap_exited_strays(
        &self,
        programs: &std::collections::HashSet<u32>,
        seen: &mut Strays,
    ) -> Option<Instant> {
        let now = Instant::now();
        let zombies: Vec<i32> = self
            .adopted()
            .into_iter()
            .filter(|c| {
                c.state == 'Z' && !programs.contains(&(c.pid as u32)) && !may_be_a_program(c.pid)
            })
            .map(|c| c.pid)
            .collect();
        // A pid no longer a zombie was reaped (by the library): forgotten,
        // so that a new child given the same pid starts its own wait.
        seen.0.retain(|pid, _| zombies.contains(pid));
        for pid in zombies {
            let since = *seen.0.entry(pid).or_insert(now);
            if now.duration_since(since) >= STRAY_AGE {
                sys::reap_if_exited(pid);
                seen.0.remove(&pid);
            }
        }
        seen.0.values().map(|&since| since + STRAY_AGE).min()
    }

    /// Becomes the subreaper; false if this platform or kernel can't.
    pub fn adopt() -> bool {
        sys::set_child_subreaper().is_ok()
    }

    /// After the program started (so the owner-death guard, if any, runs);
    /// `subreaper`: what [`Orphans::adopt`] returned.
    pub fn new(main: u32, subreaper: bool) -> Orphans {
        Orphans { main, subreaper }
    }

    /// Children that are orphans of the run: not the program, not an
    /// owner-death guard of this process (their pids read at each look,
    /// so a guard started after [`Orphans::new`] is spared too; by pid,
    /// not by name, which any orphan can take).
    fn adopted(&self) -> Vec<Child> {
        if !self.subreaper {
            return Vec::new();
        }
        let guards = pkit::guard_pids();
        children()
            .into_iter()
            .filter(|c| c.pid as u32 != self.main && !guards.contains(&(c.pid as u32)))
            .collect()
    }

    /// Reaps the adopted orphans that have exited.
    pub fn reap_exited(&self) {
        for c in self.adopted() {
            if c.state == 'Z' {
                sys::reap_if_exited(c.pid);
            }
        }
    }

    /// After the group's teardown: kills and reaps every adopted orphan
    /// still alive (their own orphans come to pkit in turn), until none is
    /// left or 5 s have passed. Returns how many were killed (`None` when
    /// pkit is no subreaper: none was looked for) and whether none is left.
    ///
    /// An orphan named `pkit-guard` (the owner-death guard of a program
    /// that uses pkit's library, re-parented here when it started) is
    /// left 4 of those 5 s to end on its own: its owner is gone (in the run's
    /// group, or killed here), and its guard then kills the owner's groups
    /// and removes their cgroup directories, which a SIGKILL midway would
    /// leave behind. One still alive then is killed, so the name is worth
    /// no more than that wait; one with a child of its own is no guard
    /// and is killed at once (see `may_be_a_guard`). An orphan that leads
    /// a process group of its own (it left with `setsid`) is killed with
    /// its group, its descendants in it at once (Linux).
    ///
    /// It blocks the calling thread while it waits (10 ms at a time): on
    /// the CLI's single-threaded runtime (`pkit supervise`'s `stop_when`
    /// hook) nothing else runs meanwhile. That is bounded (an orphan
    /// dies within a moment of its SIGKILL; 5 s at most) and happens only
    /// between runs, when no program runs and no event is due; a signal
    /// that comes meanwhile is queued and handled after it.
    pub fn sweep(&self) -> (Option<u64>, bool) {
        if !self.subreaper {
            return (None, true);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let guards_until = deadline - Duration::from_secs(1);
        let mut killed = std::collections::HashSet::new();
        loop {
            let left = self.adopted();
            if left.is_empty() {
                return (Some(killed.len() as u64), true);
            }
            let late = Instant::now() > guards_until;
            for c in &left {
                // Our own child, unreaped: its pid can't have been reused.
                if c.state != 'Z'
                    && (late || !may_be_a_guard(c))
                    && sys::kill(c.pid as u32, sig::SIGKILL).is_ok()
                {
                    kill_its_group(c);
                    killed.insert(c.pid);
                }
                sys::reap_if_exited(c.pid);
            }
            if Instant::now() > deadline {
                return (Some(killed.len() as u64), false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

//! Diagnostics for review_rv35's pid-namespace race (ns23): a thread that
//! watches, every few milliseconds, the live owner's children and the
//! killed owner's guard, so that a round whose live owner lost a process
//! can say which one, how it ended (its zombie's exit code: a SIGKILL, as
//! a guard or `cgroup.kill` sends, shows as signal 9), when (against the
//! other owner's kill and its guard's exit), in which cgroup, and whether
//! that directory is still the one it was (its inode).
//!
//! The live owner never reaps its kept processes (the helper forgets their
//! handles), so a lost one stays a zombie child of it, whose `stat` still
//! holds its exit code and whose `status` its pid in the owner's namespace.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One child of the live owner, as the watch saw it.
pub struct Seen {
    /// Its pid in the owner's namespace.
    pub ns: Option<u32>,
    /// When it was first seen (since the watch started).
    pub born: Duration,
    /// Its v2 cgroup path (from its `/proc/<pid>/cgroup`) and that
    /// directory's inode, as first seen; then each later one.
    pub cgroups: Vec<(String, Option<u64>)>,
    /// When it was first seen ended, and its exit code (`None`: already
    /// reaped, which the owner never does).
    pub died: Option<(Duration, Option<i32>)>,
}

/// A process of the killed owner's namespace besides the owner (its guard,
/// its guard's launcher): first seen, and first seen ended.
pub struct Other {
    pub pid: u32,
    pub comm: String,
    pub seen: Duration,
    pub gone: Option<Duration>,
}

#[derive(Default)]
pub struct Log {
    pub children: HashMap<u32, Seen>,
    pub others: Vec<Other>,
}

pub struct Watch {
    t0: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Log>>,
}

/// The cgroup v2 mount point (`/sys/fs/cgroup`, or `.../unified` on a
/// hybrid system).
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split(' ');
        let (_, at, kind) = (f.next()?, f.next()?, f.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(at))
    })
}

fn ino(p: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// State and exit code (field 52) from `/proc/<pid>/stat`; `None` if gone.
pub fn state_and_exit(pid: u32) -> Option<(char, Option<i32>)> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = String::from_utf8_lossy(&text[close + 1..]).into_owned();
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); exit_code is field 52.
    Some((
        f.first()?.chars().next()?,
        f.get(49).and_then(|c| c.parse().ok()),
    ))
}

/// The innermost pid of `/proc/<pid>/status`'s `NSpid` line.
pub fn ns_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_ascii_whitespace().last()?.parse().ok()
}

fn v2_cgroup(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// Every child of `pid` (each thread's `children` list), zombies included.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return found;
    };
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        found.extend(
            list.split_ascii_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    found
}

fn ended(pid: u32) -> bool {
    state_and_exit(pid).is_none_or(|(s, _)| s == 'Z' || s == 'X')
}

impl Watch {
    /// Watches `owner`'s children, and the children of `init` (the killed
    /// owner's namespace init) other than `other_owner`.
    pub fn start(owner: u32, init: u32, other_owner: u32) -> Watch {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root = cgroup2_root().unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        let thread = std::thread::spawn(move || {
            let mut log = Log::default();
            while !flag.load(Ordering::Acquire) {
                let now = t0.elapsed();
                for pid in children(owner) {
                    let seen = log.children.entry(pid).or_insert_with(|| Seen {
                        ns: ns_pid(pid),
                        born: now,
                        cgroups: Vec::new(),
                        died: None,
                    });
                    if seen.died.is_some() {
                        continue;
                    }
                    if let Some(cg) = v2_cgroup(pid) {
                        if seen.cgroups.last().is_none_or(|(c, _)| *c != cg) {
                            let i = ino(&root.join(cg.trim_start_matches('/')));
                            seen.cgroups.push((cg, i));
                        }
                    }
                }
                let alive: Vec<u32> = log
                    .children
                    .iter()
                    .filter(|(_, s)| s.died.is_none())
                    .map(|(&p, _)| p)
                    .collect();
                for pid in alive {
                    match state_and_exit(pid) {
                        Some((s, code)) if s == 'Z' || s == 'X' => {
                            log.children.get_mut(&pid).expect("known").died = Some((now, code));
                        }
                        None => {
                            log.children.get_mut(&pid).expect("known").died = Some((now, None));
                        }
                        Some(_) => {}
                    }
                }
                for pid in children(init) {
                    if pid != other_owner && !log.others.iter().any(|o| o.pid == pid) {
                        let comm = crate::common::comm(pid).unwrap_or_default();
                        log.others.push(Other {
                            pid,
                            comm,
                            seen: now,
                            gone: None,
                        });
                    }
                }
                for o in log.others.iter_mut().filter(|o| o.gone.is_none()) {
                    if ended(o.pid) {
                        o.gone = Some(now);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            log
        });
        Watch {
            t0,
            stop,
            thread: Some(thread),
        }
    }

    /// `at` as milliseconds since the watch started.
    pub fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64() * 1e3
    }

    /// Stops the watch; what it saw.
    pub fn finish(mut self) -> Log {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .expect("once")
            .join()
            .expect("the watch thread")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// An exit code (a `waitpid` status) in words.
fn exit_words(code: Option<i32>) -> String {
    match code {
        None => "reaped (no exit code)".to_string(),
        Some(c) if c & 0x7f != 0 => format!("killed by signal {}", c & 0x7f),
        Some(c) => format!("exited {}", (c >> 8) & 0xff),
    }
}

/// What the log says about the live owner's processes `want` (pids in its
/// namespace, of its kept groups) that are not alive: `killed_at` is
/// when the other owner was SIGKILLed (ms since the watch started).
pub fn report(log: &Log, want: &[u32], killed_at: f64, root: Option<PathBuf>) -> Vec<String> {
    let root = root.or_else(cgroup2_root).unwrap_or_default();
    let mut out = Vec::new();
    for &ns in want {
        let found = log.children.iter().find(|(_, s)| s.ns == Some(ns));
        let Some((&host, seen)) = found else {
            out.push(format!(
                "ns pid {ns}: never seen as a child of the live owner"
            ));
            continue;
        };
        let now = state_and_exit(host);
        if seen.died.is_none() && now.is_some_and(|(s, _)| s != 'Z' && s != 'X') {
            continue;
        }
        let (when, code) = match seen.died {
            Some((at, code)) => (format!("{:+.1} ms", ms(at) - killed_at), code),
            None => ("after the watch stopped".to_string(), now.and_then(|n| n.1)),
        };
        let dirs: Vec<String> = seen
            .cgroups
            .iter()
            .map(|(cg, then)| {
                let now = ino(&root.join(cg.trim_start_matches('/')));
                let same = match (then, now) {
                    (_, None) => "now gone".to_string(),
                    (Some(a), Some(b)) if *a == b => format!("inode {a} unchanged"),
                    (a, Some(b)) => format!("inode {a:?} then, {b} now"),
                };
                format!("{cg} ({same})")
            })
            .collect();
        out.push(format!(
            "ns pid {ns} = host pid {host}: seen at {:+.1} ms, ended {when} (relative to the other owner's kill), {}; /proc state now {:?}, cgroup now {:?}; its cgroups: {dirs:?}",
            ms(seen.born) - killed_at,
            exit_words(code),
            now.map(|n| n.0),
            v2_cgroup(host),
        ));
    }
    // The killed owner's processes, reparented to its namespace's init
    // as it died, in one line; its guard (and anything else) each.
    let orphans: Vec<&Other> = log.others.iter().filter(|o| o.comm == "sleep").collect();
    if let Some(last) = orphans.iter().filter_map(|o| o.gone).max() {
        out.push(format!(
            "killed owner's namespace: {} of its processes orphaned, the last ended {:+.1} ms",
            orphans.len(),
            ms(last) - killed_at
        ));
    }
    for o in log.others.iter().filter(|o| o.comm != "sleep") {
        out.push(format!(
            "killed owner's namespace: pid {} ({}) seen {:+.1} ms, ended {}",
            o.pid,
            o.comm,
            ms(o.seen) - killed_at,
            o.gone.map_or("not while watched".to_string(), |g| format!(
                "{:+.1} ms",
                ms(g) - killed_at
            )),
        ));
    }
    let foreign = foreign_helpers();
    if !foreign.is_empty() {
        out.push(format!(
            "helpers of another run of this or another pid-2 test on this machine now (they share the `pkit-2-*` names): {foreign:?}"
        ));
    }
    let deaths = log.children.values().filter(|s| s.died.is_some()).count();
    out.push(format!(
        "the live owner's children: {} seen, {deaths} ended (its dropped groups' included)",
        log.children.len()
    ));
    out
}

/// Whether `pid` descends from this process.
fn ours(mut pid: u32) -> bool {
    let me = std::process::id();
    for _ in 0..64 {
        if pid == me {
            return true;
        }
        match crate::common::stat(pid) {
            Some(s) if s.ppid > 1 => pid = s.ppid,
            _ => return false,
        }
    }
    false
}

/// Helper owners of review_rv35 or guard_namespaces not started by this
/// process: another run on this machine (another worktree's, CI's) whose
/// owners, pid 2 in their namespaces too, make `pkit-2-*` directories
/// under the same parent cgroup (the suite lock is per target directory).
pub fn foreign_helpers() -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline);
        if (text.contains("rv35_helper") || text.contains("guard_ns_helper")) && !ours(pid) {
            found.push(pid);
        }
    }
    found
}

/// Each live child of `owner` not in `marked` (a look for its marked
/// processes): its pid in the owner's namespace, and what `/proc` says of
/// it now (state, command name, command line, start time in ticks).
pub fn unmarked(owner: u32, marked: &[u32]) -> Vec<(Option<u32>, String)> {
    let mut out = Vec::new();
    for pid in children(owner) {
        if marked.contains(&pid) || ended(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let start = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(19).map(str::to_string));
        // Now, in the same ticks (USER_HZ, 100 here).
        let up = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
        let now = up
            .split(' ')
            .next()
            .and_then(|u| u.parse::<f64>().ok())
            .map(|u| (u * 100.0) as u64);
        out.push((
            ns_pid(pid),
            format!(
                "host pid {pid}: state {:?}, comm {:?}, cmdline {:?} ({} bytes), started at tick {start:?} (now {now:?})",
                state_and_exit(pid).map(|s| s.0),
                crate::common::comm(pid),
                String::from_utf8_lossy(&cmdline),
                cmdline.len(),
            ),
        ));
    }
    out
}

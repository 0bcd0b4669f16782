//! Processes: their state in `/proc`, waiting for them to be gone, and
//! guards that kill what a test started when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{pid_file, temp_path};

/// Kills (SIGKILL) every pid written to its file, one a line, when
/// dropped: the processes a case's program recorded, on a failed
/// assertion too.
pub struct Reap(pub PathBuf);

impl Reap {
    /// A file of [`temp_path`]`(what)`.
    pub fn new(what: &str) -> Reap {
        Reap(temp_path(what))
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 1 && !pid_gone(pid) {
                // SAFETY: kill(2) of a pid this case's program wrote.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The state letter of `pid` (`R`, `S`, `T`, `Z`, …), if it exists.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

/// Polls until `pid` is in state `want` (generous: a loaded machine can
/// take seconds to schedule a stop or a continue).
pub fn wait_state(pid: i32, want: char) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while state(pid) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {want} (is {:?})",
            state(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Gone: no /proc entry, or a zombie waiting for init to reap it (and
/// not a process whose main thread ended while others run on, which shows
/// `Z` too: `Zl` in `ps`).
pub fn pid_gone(pid: i32) -> bool {
    match state(pid) {
        None => true,
        Some('Z') | Some('X') => !a_thread_runs(pid),
        Some(_) => false,
    }
}

/// Whether a thread of `pid` is not (yet) a zombie.
fn a_thread_runs(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.filter_map(Result::ok).any(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        !matches!(
            after.split_whitespace().next(),
            None | Some("Z") | Some("X")
        )
    })
}

pub fn assert_all_gone(pids: &[i32]) {
    // Generous: a loaded machine can take seconds to schedule the kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids.iter().all(|&p| pid_gone(p)) {
        if Instant::now() >= deadline {
            // Each survivor with its state, group and session, to tell a
            // slow kill from a process outside the group.
            let alive: Vec<String> = pids
                .iter()
                .filter(|&&p| !pid_gone(p))
                .map(|&p| {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                    let f: Vec<&str> = stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .collect();
                    format!(
                        "{p} (state {:?} ppid {:?} pgid {:?} sid {:?})",
                        f.first(),
                        f.get(1),
                        f.get(2),
                        f.get(3)
                    )
                })
                .collect();
            panic!("still alive after 30 s: {}", alive.join(", "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn tree_script(file: &Path) -> String {
    format!(
        "sleep 300 & echo $! >> {f}; sleep 300 & echo $! >> {f}; echo $$ >> {f}; wait",
        f = file.display()
    )
}

/// For a run whose timeout must come after [`tree_script`]'s shell wrote
/// its three pids: `once(timeout, file)` runs pkit with `--timeout` given
/// `timeout` (whole seconds, as text) and the tree writing to `file` (a
/// fresh one each try), and returns once the tree ended. A try whose shell
/// was slower to start than its timeout (a loaded machine: fewer than
/// three pids written) is run again with twice the timeout (`secs`, then
/// up to 16 s), once what it did start is checked gone. Returns the
/// output of the try that wrote all three, and the three pids.
pub fn until_the_tree_started(
    secs: u32,
    mut once: impl FnMut(&str, &Path) -> Output,
) -> (Output, Vec<i32>) {
    let mut secs = secs;
    loop {
        let file = pid_file();
        let out = once(&secs.to_string(), &file);
        // The run waited for its shell: nothing writes to the file now.
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= 3 {
            return (out, pids);
        }
        assert_all_gone(&pids);
        assert!(
            secs < 16,
            "the shell never wrote its pids before the timeout: {text:?}, {}",
            String::from_utf8_lossy(&out.stderr)
        );
        secs *= 2;
    }
}

/// Sends `sig` to `pid` (our own unreaped child).
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// The live `pkit-guard` processes whose environment has
/// `PKIT_TEST_TAG=<tag>`.
pub fn guards_tagged(tag: &str) -> Vec<i32> {
    let want = format!("PKIT_TEST_TAG={tag}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "pkit-guard" || pid_gone(pid) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// A started `pkit` (or a program that runs one: a terminal driver, a
/// shell): when dropped before it was waited for, as at a failing
/// assertion, it is killed with its tree, and reaped, so that nothing of
/// it is left to the next test. Derefs to the [`Child`](std::process::Child);
/// its [`wait_with_output`](Self::wait_with_output) takes it, as the
/// child's does.
///
/// Only what this test started is killed, by pid: the child (not reaped
/// yet, so its pid is its own), then the processes below it as they were
/// just before (read from `/proc`), each only if its start time is still
/// the one read then (not a later process given the number).
pub struct Started(Option<std::process::Child>);

impl Started {
    /// Guards `child` (a `.spawn()`'s).
    pub fn new(child: std::process::Child) -> Started {
        Started(Some(child))
    }

    /// The child, no longer guarded (for a function that takes one).
    pub fn into_child(mut self) -> std::process::Child {
        self.0.take().expect("present until taken")
    }

    /// [`Child::wait_with_output`](std::process::Child::wait_with_output):
    /// once it returns, the child is reaped, and nothing is left to kill.
    pub fn wait_with_output(self) -> std::io::Result<Output> {
        self.into_child().wait_with_output()
    }
}

impl std::ops::Deref for Started {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("present until taken")
    }
}

impl std::ops::DerefMut for Started {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("present until taken")
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let tree = descendants(child.id());
        // The child first: a supervisor restarts nothing once it is gone.
        let _ = child.kill();
        let still: Vec<String> = tree
            .into_iter()
            .filter(|&(pid, start)| start_time(pid) == Some(start))
            .map(|(pid, _)| pid.to_string())
            .collect();
        if !still.is_empty() {
            let _ = Command::new("kill")
                .arg("-9")
                .args(&still)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = child.wait();
    }
}

/// The start time of `pid` (`/proc/<pid>/stat` field 22); `None` when it
/// is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the command name start at field 3 (the state).
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The processes below `root` now (children, their children, ...), each
/// with its start time.
pub fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let mut f = after.split_whitespace();
            let ppid = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            let start = f.nth(22 - 5).and_then(|t| t.parse::<u64>().ok());
            if let (Some(ppid), Some(start)) = (ppid, start) {
                parents.push((pid, ppid, start));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &parents {
            if ppid == parent && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, start));
                frontier.push(pid);
            }
        }
    }
    found
}

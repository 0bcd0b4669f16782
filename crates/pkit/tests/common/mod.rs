//! Helpers shared by the integration tests.
//!
//! Every test runs against real processes in both mechanisms (cgroup v2 and
//! POSIX process group), checks real effects through `/proc` and the cgroup
//! file system, and never asserts wall-clock speed: conditions are polled
//! with generous deadlines.
//!
//! Tests of one binary run concurrently, but each one ends with
//! [`Suite::end`], which waits until no other test of the binary is running
//! and then checks that nothing is left: no `pkit-<our pid>-*` cgroup
//! directory and no child process of ours (zombies included).

#![allow(dead_code)]

#[cfg(target_os = "linux")]
pub mod copies;
#[cfg(unix)]
pub mod descriptors;
pub mod events;
#[cfg(target_os = "linux")]
pub mod fds;
#[cfg(target_os = "linux")]
pub mod held;
pub mod kill_on_drop;
#[cfg(unix)]
pub mod raw_env;
#[cfg(unix)]
pub mod temp;

#[allow(unused_imports)]
pub use kill_on_drop::KillOnDrop;
#[cfg(unix)]
#[allow(unused_imports)]
pub use temp::{temp_path, unique_name};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pkit::{Command, Error, Group, Mechanism, MechanismChoice, SystemRunner};
use tokio::sync::{RwLock, RwLockReadGuard};

/// How long any polled condition may take on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Mechanisms
// ---------------------------------------------------------------------------

/// Whether the cgroup half of the tests must run (`PKIT_REQUIRE_CGROUP=1`).
pub fn cgroup_required() -> bool {
    std::env::var_os("PKIT_REQUIRE_CGROUP").is_some_and(|v| v == "1")
}

/// Whether a cgroup can be created here (probed once). `Err` carries the
/// reason it can't. Panics when cgroups are unusable but required.
pub fn cgroup_usable() -> bool {
    static USABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let usable =
        USABLE.get_or_init(
            || match Group::builder().mechanism(MechanismChoice::Cgroup).build() {
                Ok(_group) => Ok(()),
                Err(e @ Error::MechanismUnavailable { .. }) => Err(e.to_string()),
                Err(e) => panic!("creating a cgroup group failed unexpectedly: {e}"),
            },
        );
    match usable {
        Ok(()) => true,
        Err(why) if cgroup_required() => {
            panic!("PKIT_REQUIRE_CGROUP=1 but no cgroup can be created here: {why}")
        }
        Err(why) => {
            skipped(
                "the cgroup half of every test (each runs under process groups only)",
                &format!(
                    "{why}; run as root or in a delegated cgroup, or set \
                     PKIT_REQUIRE_CGROUP=1 to make this an error"
                ),
            );
            false
        }
    }
}

/// Whether this pass runs test `name`, which needs the cgroup mechanism and
/// runs in the default pass only (the others force theirs with
/// `PKIT_MECHANISM`); says why not through [`skipped`].
#[allow(dead_code)]
pub fn cgroup_pass(name: &str) -> bool {
    if std::env::var_os("PKIT_MECHANISM").is_some_and(|m| !m.is_empty()) {
        skipped(name, "cgroup only: runs in the default pass");
        return false;
    }
    if !cgroup_usable() {
        skipped(name, "no cgroup v2 here");
        return false;
    }
    true
}

/// Reports something this test binary skips, and why, once per binary and
/// `what`: on the real stderr, so a plain `cargo test` shows it (the test
/// harness captures `eprintln!` output of passing tests).
pub fn skipped(what: &str, why: &str) {
    use std::io::Write;
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if !SAID
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(what.to_string())
    {
        return;
    }
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let binary = binary.rsplit_once('-').map_or(binary.as_str(), |(b, _)| b);
    // One write(2): stderr is unbuffered, and `writeln!` would write each
    // piece separately, letting the harness's stdout land mid-line where
    // both go to one pipe.
    let line = format!("SKIPPED in tests/{binary}.rs: {what}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether this run tests the portable Unix backend
/// (`PKIT_MECHANISM=portable`, the backend macOS and the BSDs run).
pub fn portable_run() -> bool {
    MechanismChoice::from_env() == Ok(MechanismChoice::Portable)
}

/// Skips (returns true, saying why on stderr) when `choice` is the
/// portable backend, for a test of a Linux-only feature.
pub fn skip_on_portable(choice: MechanismChoice, why: &str) -> bool {
    if choice == MechanismChoice::Portable {
        skipped(
            why,
            "Linux-only, not on the portable backend (PKIT_MECHANISM=portable)",
        );
        return true;
    }
    false
}

/// Both mechanisms, each forced explicitly; the cgroup one is left out
/// (loudly) only where no cgroup can be created and none is required.
///
/// Under `PKIT_MECHANISM=portable` the portable Unix backend alone (the
/// other two are covered by the other runs). Under `PKIT_MECHANISM=pgroup`
/// the process-group mechanism alone: that run exists for the paths that
/// take the process-wide default (`Group::new`, the verbs, pipelines'
/// groups), and a forced cgroup group there runs exactly what the default
/// run ran already (CI's second pass; it halves that pass's time).
pub fn mechanisms() -> Vec<MechanismChoice> {
    if portable_run() {
        return vec![MechanismChoice::Portable];
    }
    if MechanismChoice::from_env() == Ok(MechanismChoice::ProcessGroup) {
        return vec![MechanismChoice::ProcessGroup];
    }
    let mut out = Vec::with_capacity(2);
    if cgroup_usable() {
        out.push(MechanismChoice::Cgroup);
    }
    out.push(MechanismChoice::ProcessGroup);
    out
}

/// The mechanism a forced choice yields.
pub fn expected_mechanism(choice: MechanismChoice) -> Mechanism {
    match choice {
        MechanismChoice::Cgroup => Mechanism::CgroupV2,
        MechanismChoice::ProcessGroup | MechanismChoice::Portable => Mechanism::ProcessGroup,
        other => panic!("tests force a mechanism, not {other:?}"),
    }
}

/// A pty session of `sh -c script` (24x80, lines streamed, terminal
/// escapes stripped) started in a fresh group of `choice`.
pub fn start_pty_sh(choice: MechanismChoice, script: &str) -> (Group, pkit::RunningProcess) {
    let group = group(choice);
    let cmd = Command::new("sh")
        .args(["-c", script, "sh"])
        .pty(24, 80)
        .stream_lines()
        .decoder(pkit::DecoderFactory::utf8_strip_vt());
    let proc = group
        .start(&cmd)
        .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
    (group, proc)
}

/// A group with the mechanism forced.
pub fn group(choice: MechanismChoice) -> Group {
    let group = Group::builder()
        .mechanism(choice)
        .build()
        .unwrap_or_else(|e| panic!("{choice}: building a group: {e}"));
    assert_eq!(group.mechanism(), expected_mechanism(choice), "{choice}");
    group
}

/// `program` run by a runner with the mechanism forced.
pub fn cmd(choice: MechanismChoice, program: &str) -> Command {
    Command::new(program).runner(Arc::new(SystemRunner::with_mechanism(choice)))
}

/// `sh -c script sh args...` run by a runner with the mechanism forced.
/// Inside the script the extra arguments are `$1`, `$2`, ...
pub fn sh(choice: MechanismChoice, script: &str) -> Command {
    cmd(choice, "sh").args(["-c", script, "sh"])
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp,
/// session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = String::from_utf8_lossy(&text[close + 1..]).into_owned();
    let mut f = rest.split_ascii_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    let session = f.next()?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgrp,
        session,
    })
}

/// The command name of `pid` (`/proc/<pid>/comm`).
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Whether `pid` is gone: no `/proc/<pid>`, or a zombie / dead task (init
/// here reaps orphans only every few seconds, so killed grandchildren may
/// linger as zombies; they run nothing). `kill(pid, 0)` succeeds on zombies
/// and is not used.
pub fn pid_gone(pid: u32) -> bool {
    match stat(pid) {
        None => true,
        Some(s) if s.state == 'Z' || s.state == 'X' => !a_thread_runs(pid),
        Some(_) => false,
    }
}

/// Whether a thread of `pid` still runs. A process whose main thread has
/// ended while other threads run on shows `Z` in its stat (`Zl` in `ps`),
/// as a zombie does, yet it runs: only a process with no running thread
/// is gone.
pub fn a_thread_runs(pid: u32) -> bool {
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

/// Polls until every pid is gone; `Err` lists those still alive at the
/// deadline.
pub async fn wait_gone(pids: &[u32], within: Duration) -> Result<(), Vec<u32>> {
    let deadline = Instant::now() + within;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| !pid_gone(p)).collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(alive);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Panics unless every pid is gone within [`DEADLINE`].
pub async fn assert_gone(pids: &[u32], what: &str) {
    if let Err(alive) = wait_gone(pids, DEADLINE).await {
        let detail: Vec<String> = alive
            .iter()
            .map(|p| format!("{p} {:?} {:?}", comm(*p), stat(*p)))
            .collect();
        panic!("{what}: still alive after {DEADLINE:?}: {detail:?} (of {pids:?})");
    }
}

/// Panics unless every pid is alive (not gone) right now.
pub fn assert_alive(pids: &[u32], what: &str) {
    for &p in pids {
        assert!(
            !pid_gone(p),
            "{what}: pid {p} should be alive ({:?})",
            stat(p)
        );
    }
}

/// SIGKILLs `pid` (with the `kill` utility, so the tests need no unsafe).
pub fn kill_pid(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The pids of the processes `holder` holds a pidfd for (from its
/// `/proc/<pid>/fdinfo`: a pidfd's says `Pid:`): what an owner-death guard
/// has read of the process-group registrations sent to it.
pub fn pidfds_held(holder: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{holder}/fdinfo")) else {
        return out;
    };
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        if let Some(pid) = info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|p| p.trim().parse().ok())
        {
            out.insert(pid);
        }
    }
    out
}

/// Polls `file` (up to [`DEADLINE`]) until it holds a pid, as a script's
/// `echo $! > file` writes one; panics with `what` if none comes.
pub async fn pid_in_file(file: &TempPath, what: &str) -> u32 {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let read = std::fs::read_to_string(file.path()).unwrap_or_default();
        if let Ok(pid) = read.trim().parse() {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no pid in {}",
            file.as_str()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A `sleep 300` leading a process group of the test's own, for a program
/// under test to move into (`setpgid` to [`Anchor::pgid`]); killed and
/// reaped when dropped, a failed assertion included.
pub struct Anchor(std::process::Child);

impl Anchor {
    /// Starts the anchor.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Anchor {
        use std::os::unix::process::CommandExt;
        Anchor(
            std::process::Command::new("sleep")
                .arg("300")
                .process_group(0)
                .spawn()
                .expect("sleep starts"),
        )
    }

    /// The anchor's process group (its pid).
    pub fn pgid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `std` child (a helper owner, an inner run of the test binary, a
/// `sleep` of the test's own) killed and reaped when dropped: a failed
/// assertion between its start and the test's own kill must not leave it
/// to the next test's leak check. Derefs to the child.
pub struct ChildOnDrop(pub std::process::Child);

impl std::ops::Deref for ChildOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ChildOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs this test binary's test `name` alone as a helper process, with
/// environment variable `var` set to `role` (the test reads it to play
/// that role), under the `wrap` command if any (`unshare`...): stdout
/// piped and read whole, stderr dropped, killed after `within`. Its exit
/// status (None: killed at the bound) and its stdout.
pub fn run_self_as(
    name: &str,
    role: (&str, &str),
    wrap: &[&str],
    within: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    run_helper_cmd(self_as(name, role, wrap), within)
}

/// The command of [`run_self_as`]: this test binary, running its test
/// `name` alone (ignored or not) with `var` set to `role`, under `wrap`
/// if any.
pub fn self_as(name: &str, (var, role): (&str, &str), wrap: &[&str]) -> std::process::Command {
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    cmd.args([
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ])
    .env(var, role);
    cmd
}

/// Runs the helper `cmd` (see [`self_as`]): stdout piped and read whole,
/// stderr dropped, killed after `within`. Its exit status (None: killed
/// at the bound) and its stdout.
pub fn run_helper_cmd(
    mut cmd: std::process::Command,
    within: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    use std::io::Read;
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the helper starts");
    let mut held = ChildOnDrop(child);
    let mut out = held.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + within;
    let status = loop {
        if let Some(s) = held.0.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = held.0.kill();
            let _ = held.0.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    drop(held);
    (status, reader.join().unwrap_or_default())
}

/// A helper's outcome as its asserts read it: whether it exited with
/// success, and what follows `tag` in each line of its stdout `text` that
/// has it, then `(helper: <status>)`.
pub fn helper_said(
    status: Option<std::process::ExitStatus>,
    text: &str,
    tag: &str,
) -> (bool, Vec<String>) {
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|l| l.find(tag).map(|i| l[i + tag.len()..].to_owned()))
        .collect();
    lines.push(format!("(helper: {status:?})"));
    (status.is_some_and(|s| s.success()), lines)
}

/// Child processes of this test process, zombies included (pkit must reap
/// every child it started).
pub fn own_children() -> Vec<(u32, Option<Stat>)> {
    let me = std::process::id();
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(s) = stat(pid) {
                if s.ppid == me {
                    out.push((pid, Some(s)));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// cgroups
// ---------------------------------------------------------------------------

/// The cgroup directory of a cgroup-mode group, parsed from its
/// description (`cgroup v2 at <path>; ...`); `None` for a process group.
pub fn cgroup_dir(group: &Group) -> Option<PathBuf> {
    let d = group.description();
    let rest = d.strip_prefix("cgroup v2 at ")?;
    let path = rest.split("; ").next()?;
    Some(PathBuf::from(path))
}

/// The pids listed in the `cgroup.procs` of a cgroup directory and of every
/// cgroup below it (a started process lives in a sub-cgroup of its group's
/// directory).
pub fn cgroup_procs(dir: &Path) -> Vec<u32> {
    let mut pids = cgroup_own_procs(dir);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            pids.extend(cgroup_procs(&entry.path()));
        }
    }
    pids
}

/// The pids listed in one cgroup directory's own `cgroup.procs`.
pub fn cgroup_own_procs(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls until `dir` no longer exists.
pub async fn assert_dir_gone(dir: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while dir.exists() {
        assert!(
            Instant::now() < deadline,
            "cgroup directory {} still exists after {DEADLINE:?}",
            dir.display()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until the cgroup directory `dir` of a group that ended empty
/// (every process exited, none killed) is no longer there: removed, or
/// kept by pkit as a spare for a later group, which
/// `pkit::release_spare_cgroups` removes. Another test's group may take
/// the spare meanwhile: then it is released once that group ends.
pub async fn assert_dir_released(dir: &Path) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if !dir.exists() {
            return;
        }
        pkit::release_spare_cgroups();
        if !dir.exists() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cgroup directory {} still exists (released spares included) after {DEADLINE:?}",
            dir.display()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Where this process's groups' cgroups are created, if cgroup v2 is here.
pub fn group_parent() -> Option<PathBuf> {
    pkit::host_containment().group_parent
}

/// The `pkit-<our pid>-*` cgroup directories that exist now.
pub fn own_cgroup_dirs() -> Vec<PathBuf> {
    // Emptied directories kept for reuse by later one-shot runs are not
    // leaks, but remove them so the check sees only what matters.
    pkit::release_spare_cgroups();
    group_parent().map_or_else(Vec::new, |parent| {
        cgroup_dirs_of(&parent, std::process::id())
    })
}

/// The `pkit-<owner>-*` cgroup directories under `parent` that exist now
/// (none when `parent` can't be read).
pub fn cgroup_dirs_of(parent: &Path, owner: u32) -> Vec<PathBuf> {
    let prefix = name_prefix(owner);
    let Ok(dir) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Polls until no `pkit-<our pid>-*` cgroup directory and no child process
/// of ours (zombie or not) remains. Only meaningful while no other test of
/// this binary runs (see [`Suite::end`]).
///
/// What one test is found to leave behind is reported by that test only:
/// later tests ignore it, so one failure does not fail every test after it.
pub async fn assert_nothing_left(what: &str) {
    static REPORTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let reported = || REPORTED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let known = reported();
        let mut dirs = own_cgroup_dirs();
        dirs.retain(|d| !known.contains(&d.display().to_string()));
        let mut children = own_children();
        children.retain(|(p, _)| !known.contains(&p.to_string()));
        if dirs.is_empty() && children.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            REPORTED.lock().unwrap_or_else(|e| e.into_inner()).extend(
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .chain(children.iter().map(|(p, _)| p.to_string())),
            );
            let children: Vec<String> = children
                .iter()
                .map(|(p, s)| format!("{p} {:?} {s:?}", comm(*p)))
                .collect();
            panic!(
                "{what}: left behind after {DEADLINE:?}: cgroups {dirs:?}, children {children:?}"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// Test bracketing
// ---------------------------------------------------------------------------

static SUITE: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

/// A running test. Tests of one binary run concurrently (each holds a read
/// lock); [`end`](Self::end) waits for exclusive access and checks that
/// nothing is left behind.
///
/// The lock has a second, cross-process half (Linux): each test also holds
/// a shared `flock` on the suite's lock file ([`suite_lock_path`]), and a
/// test begun with [`begin_exclusive`] an exclusive one, so that it runs
/// alone among the test binaries run at once too (`.ci/par-test`), not
/// only in its own. The in-process half is taken first, then the file's
/// (through its gate, which gives an exclusive taker priority over the
/// shared takers that come after it: see `cross_lock`): the same order
/// everywhere.
pub struct Suite {
    name: &'static str,
    // Dropped before `running` (fields drop in order): the file's half
    // first, then the in-process half.
    cross: Option<CrossLock>,
    running: Option<RwLockReadGuard<'static, ()>>,
}

/// Starts a test (see [`Suite`]).
pub async fn begin(name: &'static str) -> Suite {
    let running = SUITE.read().await;
    let cross = cross_lock(false).await;
    Suite {
        name,
        cross: Some(cross),
        running: Some(running),
    }
}

/// A test running alone (see [`begin_exclusive`]): the in-process lock's
/// write half, and the suite lock file's exclusive `flock`.
pub struct Exclusive {
    // Dropped first (fields drop in order): the file's half, then the
    // in-process half.
    _cross: CrossLock,
    _alone: tokio::sync::RwLockWriteGuard<'static, ()>,
}

/// Starts a test that must run alone (it measures process-wide state such
/// as open fds, or steers what is machine-wide, as pid allocation): alone
/// in its binary, and among the test binaries run at once with the same
/// suite lock file (see [`Suite`]); pair it with [`end_exclusive`].
pub async fn begin_exclusive() -> Exclusive {
    let alone = SUITE.write().await;
    let cross = cross_lock(true).await;
    Exclusive {
        _cross: cross,
        _alone: alone,
    }
}

/// Starts a test that must run alone in its binary only: what it checks is
/// this process's own (its descriptors, threads, children and zombies, its
/// resource limits, a process-wide disposition), which another process's
/// tests do not change. The in-process lock's write half, as
/// [`begin_exclusive`], with the suite lock file's shared `flock`, as
/// [`begin`]: the other test binaries run at once (`.ci/par-test`) keep
/// running beside it, and it does not make them all wait for it (an
/// exclusive `flock` waits until every test of every other binary running
/// has ended, and holds the tests begun meanwhile). A test whose checks
/// another process could disturb (machine-wide state, pid allocation, a
/// time bound on a quiet machine) takes [`begin_exclusive`]. Pair it with
/// [`end_exclusive`].
pub async fn begin_alone_in_binary() -> Exclusive {
    let alone = SUITE.write().await;
    let cross = cross_lock(false).await;
    Exclusive {
        _cross: cross,
        _alone: alone,
    }
}

/// Ends a test started with [`begin_exclusive`] or
/// [`begin_alone_in_binary`], checking that nothing is left behind.
pub async fn end_exclusive(guard: Exclusive, name: &str) {
    assert_nothing_left(name).await;
    drop(guard);
}

impl Suite {
    /// Waits until no other test of this binary is running, then checks
    /// that no cgroup directory of this process and no child process of it
    /// (zombies included) is left. (What it checks is this process's own:
    /// the cross-process half is let go first.)
    pub async fn end(mut self) {
        self.cross.take();
        self.running.take();
        let _alone = SUITE.write().await;
        assert_nothing_left(self.name).await;
    }
}

/// The suite lock file that the test binaries run at once agree on:
/// `PKIT_TEST_LOCK` if set, else `pkit-suite.lock` in the build's
/// `CARGO_TARGET_TMPDIR` (shared by every test binary of one target
/// directory).
pub fn suite_lock_path() -> PathBuf {
    std::env::var_os("PKIT_TEST_LOCK").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("pkit-suite.lock"),
        PathBuf::from,
    )
}

/// The suite lock's gate, beside its file (`<suite lock file>.gate`): see
/// [`cross_lock`].
pub fn suite_gate_path() -> PathBuf {
    let mut gate = suite_lock_path().into_os_string();
    gate.push(".gate");
    PathBuf::from(gate)
}

/// The cross-process half of the suite lock: an open file description of
/// the suite lock file with a `flock` on it (none where there is no such
/// half), let go when dropped (closed).
pub struct CrossLock(Option<std::fs::File>);

/// Takes the suite lock file's `flock`, shared or exclusive, off the async
/// threads. Linux only (CI's parallel passes run there). Not in a helper
/// run of a test binary (a process one of whose ancestors runs the same
/// executable): the test that started it holds the lock already, and an
/// exclusive one would wait for itself.
///
/// Writer priority, through a second file, the gate ([`suite_gate_path`]):
/// a shared taker holds the gate shared only while it takes the suite
/// file's `flock` (it lets it go once it has that), an exclusive taker holds
/// it exclusively until it has the suite file's `flock`. Linux `flock` has
/// no writer priority of its own: without the gate an exclusive test waited
/// until no test of any other binary held the shared lock, and as those
/// binaries kept beginning tests it waited for most of their run, holding
/// its own binary's other tests (its in-process write lock) meanwhile. With
/// it, the tests begun after an exclusive taker wait behind it; it waits
/// only for those running. The order is the same everywhere: the
/// in-process lock, the gate, the suite file. A gate that can't be opened
/// is done without (the lock is then as it was without it).
#[cfg(target_os = "linux")]
async fn cross_lock(exclusive: bool) -> CrossLock {
    if helper_run() {
        return CrossLock(None);
    }
    let path = suite_lock_path();
    let gate_path = suite_gate_path();
    tokio::task::spawn_blocking(move || {
        use rustix::fs::FlockOperation;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let Some(file) = open_lock_file(&path) else {
            return CrossLock(None);
        };
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        let gate = open_lock_file(&gate_path);
        if let Some(gate) = &gate {
            lock_file(gate, op, &gate_path);
        }
        lock_file(&file, op, &path);
        // Closing it lets the gate go.
        drop(gate);
        CrossLock(Some(file))
    })
    .await
    .expect("the suite lock's thread")
}

/// Opens a lock file, close-on-exec (std's default: no child holds it).
/// Read-only when another user made it (a `flock` needs no write access);
/// `None` when it can't be opened at all (an unprivileged deployment case,
/// run alone by .ci/deploy: it then takes no cross-process lock).
#[cfg(target_os = "linux")]
fn open_lock_file(path: &Path) -> Option<std::fs::File> {
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .create(write)
            .open(path)
    };
    open(true).or_else(|_| open(false)).ok()
}

/// `flock(file, op)`, retried when interrupted.
#[cfg(target_os = "linux")]
fn lock_file(file: &std::fs::File, op: rustix::fs::FlockOperation, path: &Path) {
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("flock on the suite lock file {}: {e}", path.display()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
async fn cross_lock(_exclusive: bool) -> CrossLock {
    CrossLock(None)
}

/// Whether one of this process's ancestors runs this executable (this is a
/// helper run of a test, started by it or by its processes).
#[cfg(target_os = "linux")]
fn helper_run() -> bool {
    static HELPER: OnceLock<bool> = OnceLock::new();
    *HELPER.get_or_init(|| {
        let Ok(me) = std::fs::read_link("/proc/self/exe") else {
            return false;
        };
        let mut pid = std::process::id();
        // Bounded: a pid chain ends at 1 (or at a parent we may not read).
        for _ in 0..64 {
            let Some(ppid) = parent_of(pid) else {
                return false;
            };
            if ppid <= 1 {
                return false;
            }
            if std::fs::read_link(format!("/proc/{ppid}/exe")).is_ok_and(|exe| exe == me) {
                return true;
            }
            pid = ppid;
        }
        false
    })
}

/// `pid`'s parent (`/proc/<pid>/stat`'s fourth field), if it can be read.
#[cfg(target_os = "linux")]
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `f` (blocking code, outside a runtime) between a suite's begin
/// and end, as a `#[test]` that starts processes (a helper run of this
/// binary included) must: the other tests' checks that no child or
/// cgroup of ours is left would see its own.
pub fn in_suite(name: &'static str, f: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin(name));
    f();
    rt.block_on(suite.end());
}

/// [`in_suite`] for a test that must run alone ([`begin_exclusive`]): one
/// that steers what is machine-wide, as pid allocation (`ns_last_pid`),
/// where another test's fork, in this binary or in one run at once, would
/// take the pid meant for it (and keep it, a `sleep 300`).
pub fn in_suite_exclusive(name: &'static str, f: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let alone = rt.block_on(begin_exclusive());
    f();
    rt.block_on(end_exclusive(alone, name));
}

/// Waits (up to a minute, a backstop for a loaded machine) until one of
/// this process's `pkit-fifo-open` threads is blocked in its `open`
/// (`/proc/self/task/*/syscall`, asleep there); whether one was. A test that changes
/// what the FIFO's name names must do it only then, or the thread opens
/// the new file instead.
pub fn wait_for_an_open_thread_in_open() -> bool {
    let nrs: &[&str] = if cfg!(target_arch = "aarch64") {
        &["56 "]
    } else {
        &["2 ", "257 "]
    };
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let in_open = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .any(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim_end() == "pkit-fifo-open")
                    && std::fs::read_to_string(t.path().join("syscall"))
                        .is_ok_and(|s| nrs.iter().any(|nr| s.starts_with(nr)))
                    // Asleep there (not preempted in its path's lookup).
                    && std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
                        s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('S'))
                    })
            });
        if in_open {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

/// This process's threads that open a FIFO for a start (pkit names them
/// `pkit-fifo-open`).
pub fn open_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "pkit-fifo-open")
        })
        .count()
}

/// `f` on a fresh current-thread runtime of its own thread, which is shut
/// down (and its thread ended) before this returns: for a handle made
/// there and used after its runtime has gone.
pub fn on_short_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let out = rt.block_on(f());
        drop(rt);
        out
    })
    .join()
    .expect("runtime thread")
}

/// `sh -c script sh file` with its stdio on `/dev/null`, ended by its
/// `timeout` with SIGTERM, then SIGKILL after `grace` (the runtime-loss
/// tests' programs: attack_dec06 and attack_dec06c).
pub fn graced_sh(script: &str, file: &TempPath, timeout: Duration, grace: Duration) -> Command {
    Command::new("sh")
        .args(["-c", script, "sh", file.as_str()])
        .stdout(pkit::Stdio::Null)
        .stderr(pkit::Stdio::Null)
        .timeout(timeout)
        .timeout_signal(pkit::Signal::Term)
        .grace(grace)
}

/// Runs `case` for each of `cases` at once, each on a thread of its own
/// (for blocking cases that mostly wait), and returns once all have ended;
/// if any panicked (each panic's message is printed as it happens), it
/// panics then.
pub fn at_once<T: Send>(cases: impl IntoIterator<Item = T>, case: impl Fn(T) + Sync) {
    std::thread::scope(|s| {
        for c in cases {
            let case = &case;
            s.spawn(move || case(c));
        }
    });
}

/// Runs `case` for each of `cases` at once, as tasks of the test's runtime
/// (for cases that mostly wait: timeouts, graces, a program's linger), and
/// once all have ended fails with the first panic, if any (each panic's
/// message is printed as it happens).
pub async fn all_at_once<T, F>(cases: impl IntoIterator<Item = T>, case: impl Fn(T) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for c in cases {
        set.spawn(case(c));
    }
    let mut failed = None;
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a case did not finish: {e}"),
        }
    }
}

/// As [`all_at_once`], with at most `limit` cases running at a time: for
/// cases that each keep a core busy (a helper that starts processes
/// without end), where all of them at once would only queue on the CPU
/// and stretch each case's deadlines. `case` must do its work in the
/// future it returns (each future is made up front, polled later).
pub async fn at_most_at_once<T, F>(
    limit: usize,
    cases: impl IntoIterator<Item = T>,
    case: impl Fn(T) -> F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    all_at_once(cases, |c| {
        let slots = slots.clone();
        let run = case(c);
        async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            run.await
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Temp files
// ---------------------------------------------------------------------------

/// A unique temporary file path, removed on drop.
pub struct TempPath(PathBuf);

impl TempPath {
    /// [`temp_path`]`(tag)`: unique across runs of the suite (another pid
    /// namespace, an earlier process with our pid); nothing is created,
    /// and a file already there is removed (an earlier process with our pid
    /// that a test SIGKILLed never removed its own: CI's
    /// attack_dec04h_nested read another run's pids so, before the names
    /// had the namespace and the clock).
    pub fn new(tag: &str) -> TempPath {
        let path = temp_path(tag);
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path as a `&str` (to pass as a script argument).
    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }

    /// Polls until the file has a line `done`, then returns the lines
    /// before it parsed as pids.
    pub async fn wait_pids(&self) -> Vec<u32> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            if text.lines().any(|l| l == "done") {
                return text
                    .lines()
                    .take_while(|l| *l != "done")
                    .map(|l| {
                        l.trim()
                            .parse()
                            .unwrap_or_else(|_| panic!("not a pid: {l:?} in {text:?}"))
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} has no `done` line after {DEADLINE:?}: {text:?}",
                self.0.display()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------

/// Starts two `sleep 300` grandchildren and appends their pids, then its
/// own, then `done` to the file `$1`; then waits.
pub const TREE_TO_FILE: &str = r#"sleep 300 & echo $! >> "$1"; sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; wait"#;

/// The same tree, reporting on stdout: two `sleep 300` pids, its own pid,
/// then `ready`; then waits.
pub const TREE_TO_STDOUT: &str =
    "sleep 300 & echo $!; sleep 300 & echo $!; echo $$; echo ready; wait";

/// Parses the pid lines before `ready` on stdout; `None` if `ready` is
/// missing (the script did not get that far).
pub fn pids_before_ready(stdout: &str) -> Option<Vec<u32>> {
    if !stdout.lines().any(|l| l == "ready") {
        return None;
    }
    Some(
        stdout
            .lines()
            .take_while(|l| *l != "ready")
            .map(|l| l.trim().parse().expect("a pid line"))
            .collect(),
    )
}

/// Pid lines anywhere in `stdout` (for partial output).
pub fn pid_lines(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Runs `make(timeout)` with growing timeouts until its stdout reports
/// `ready` before the timeout fired (a loaded machine may be slow to start
/// the script), checking each attempt timed out; returns the output and the
/// pids it reported. Every pid printed by an earlier, too-short attempt
/// must be gone too.
pub async fn output_timing_out_after_ready(
    what: &str,
    make: impl Fn(Duration) -> Command,
) -> (pkit::Output, Vec<u32>) {
    output_timing_out_after_ready_from(Duration::from_millis(500), what, make).await
}

/// As [`output_timing_out_after_ready`], with `first` the first attempt's
/// timeout (for a test of many runs whose script is ready at once: each
/// run lasts its whole timeout).
pub async fn output_timing_out_after_ready_from(
    first: Duration,
    what: &str,
    make: impl Fn(Duration) -> Command,
) -> (pkit::Output, Vec<u32>) {
    let mut limit = first;
    loop {
        let out = make(limit)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(out.timed_out(), "{what}: {out:?} {:?}", out.stdout_str());
        if let Some(pids) = pids_before_ready(&out.stdout_str()) {
            return (out, pids);
        }
        let mut partial = pid_lines(&out.stdout_str());
        partial.push(out.pid());
        assert_gone(&partial, what).await;
        assert!(
            limit < Duration::from_secs(16),
            "{what}: the script never got ready"
        );
        limit *= 2;
    }
}

/// Sorted, deduplicated copy of `pids`.
pub fn set(pids: &[u32]) -> BTreeSet<u32> {
    pids.iter().copied().collect()
}

/// Writes `content` to `path` with permission bits `mode`, from a separate
/// process: if this process wrote a file it then executes, a child forked
/// meanwhile by another thread could still hold the write fd and make the
/// exec fail with ETXTBSY.
pub fn write_file_externally(path: &Path, content: &str, mode: u32) {
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            r#"printf '%s' "$2" > "$1" && chmod "$3" "$1""#,
            "sh",
            path.to_str().expect("UTF-8 path"),
            content,
            &format!("{mode:o}"),
        ])
        .status()
        .expect("run sh");
    assert!(status.success(), "writing {}", path.display());
}

// ---------------------------------------------------------------------------
// Stop signals to the owner's process group
// ---------------------------------------------------------------------------

/// Set in the re-run of a test binary that owns the pty starts of
/// [`pty_starts_under_stops`]: the mechanism to start them with.
const STOPPED_OWNER: &str = "PKIT_TEST_PTY_STOPPED_OWNER";

/// In the re-run [`pty_starts_under_stops`] makes: the mechanism its owner
/// starts with (`None` in the test itself).
pub fn stopped_owner() -> Option<MechanismChoice> {
    let choice = std::env::var(STOPPED_OWNER).ok()?;
    Some(MechanismChoice::parse(&choice).expect("a mechanism"))
}

/// Runs the test `test` of this binary again, as the owner of pty starts
/// of `choice` ([`owner_of_pty_starts_under_stops`], which the test calls
/// when [`stopped_owner`] says so), under a terminal's stop signals
/// ([`owner_under_stops`]); panics if its starts stall or fail.
pub fn pty_starts_under_stops(test: &str, choice: MechanismChoice) {
    let mut owner = std::process::Command::new(std::env::current_exe().expect("own path"));
    owner
        .args(["--exact", test, "--nocapture"])
        .env(STOPPED_OWNER, choice.as_str());
    // Its handlers are in place once it says so (a stop before would stop
    // the owner itself).
    let ready = |line: &str| line.starts_with("owner: ready");
    let what = format!("{choice}: the owner's pty starts");
    let (status, rest) = owner_under_stops(&what, owner, ready, 12 * DEADLINE, Duration::ZERO);
    assert!(status.success(), "{choice}: {status:?}: {rest}");
    assert!(rest.contains("owner: done"), "{choice}: {rest}");
}

/// Runs `owner` (a command the caller has set up: a re-run of this test
/// binary as some test's owner) in a process group of its own, its stdout
/// read line by line; once a line passes `ready` (its stop signal handlers
/// are in place), floods that group with SIGTSTP, SIGTTIN and SIGTTOU
/// (what a terminal sends its foreground group) until the owner ends, in
/// bursts of 10 ms `quiet` apart (zero: all the time; an owner whose
/// children run in its group resumes them in the pauses).
/// Returns its exit status and what it said after the ready line.
///
/// Panics, saying `what` and what the owner said, when it is not ready
/// within [`DEADLINE`] or has not ended `within` its ready line (its
/// starts stalled): its whole process group is killed first, stopped
/// children included. Every read has a deadline: a stalled owner fails the
/// test, never hangs it.
pub fn owner_under_stops(
    what: &str,
    mut owner: std::process::Command,
    ready: impl Fn(&str) -> bool,
    within: Duration,
    quiet: Duration,
) -> (std::process::ExitStatus, String) {
    use rustix::process::{kill_process_group, Signal};
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc::RecvTimeoutError;
    let mut owner = owner
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the owner");
    let group = rustix::process::Pid::from_raw(owner.id() as i32).expect("a pid");
    // Its lines, through a channel: each wait for one has a deadline.
    let said = std::io::BufReader::new(owner.stdout.take().expect("stdout"));
    let (lines, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in said.lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Ends the owner's whole group (its stopped children too) and reaps it.
    let kill = |owner: &mut std::process::Child| {
        let _ = kill_process_group(group, Signal::KILL);
        let _ = owner.wait();
    };
    // The lines heard until the channel closes or `until`.
    let drain = |into: &mut String, until: Instant| loop {
        let left = until.saturating_duration_since(Instant::now());
        match heard.recv_timeout(left) {
            Ok(line) => {
                into.push_str(&line);
                into.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => break true,
            Err(RecvTimeoutError::Timeout) => break false,
        }
    };
    let mut before = String::new();
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match heard.recv_timeout(left) {
            Ok(line) if ready(&line) => break,
            Ok(line) => {
                before.push_str(&line);
                before.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = owner.wait();
                panic!(
                    "{what}: the owner ended before it was ready ({status:?}); it said: {before}"
                );
            }
            Err(RecvTimeoutError::Timeout) => {
                kill(&mut owner);
                panic!("{what}: the owner was not ready within {DEADLINE:?}; it said: {before}");
            }
        }
    }
    let deadline = Instant::now() + within;
    let mut rest = String::new();
    let status = loop {
        if let Some(status) = owner.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let stuck = children_of(owner.id());
            kill(&mut owner);
            drain(&mut rest, Instant::now() + DEADLINE);
            panic!("{what} stalled (its children then: {stuck:?}); the owner said: {rest}");
        }
        // In bursts of 10 ms, `quiet` apart.
        let burst = Instant::now() + Duration::from_millis(10);
        while Instant::now() < burst {
            for signal in [Signal::TSTP, Signal::TTIN, Signal::TTOU] {
                let _ = kill_process_group(group, signal);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(quiet);
    };
    if !drain(&mut rest, Instant::now() + DEADLINE) {
        panic!("{what}: the owner ended ({status:?}) but its output did not; it said: {rest}");
    }
    (status, rest)
}

/// The children of `pid`: their pid, `/proc` state and command name.
pub fn children_of(pid: u32) -> Vec<(u32, char, Option<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| Some((child, stat(child)?)))
        .filter(|(_, s)| s.ppid == pid)
        .map(|(child, s)| (child, s.state, comm(child)))
        .collect()
}

/// The owner of [`pty_starts_under_stops`]: catches the stop signals (a
/// caught signal is reset to its default action in a child, where an
/// ignored one would stay ignored and hide a child stopped in the owner's
/// group), says it is ready, then starts pty sessions one after another.
pub async fn owner_of_pty_starts_under_stops(choice: MechanismChoice) {
    use tokio::signal::unix::{signal, SignalKind};
    let _handlers: Vec<_> = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]
        .into_iter()
        .map(|s| signal(SignalKind::from_raw(s)).expect("a handler"))
        .collect();
    // Under the Linux mechanisms the guard is started before the storm
    // (its own start under stops is tests/guard.rs's
    // stops_to_the_owners_group_never_stall_a_guards_start); the portable
    // backend's guard launcher starts during it.
    if choice != MechanismChoice::Portable {
        let out = sh(choice, "true")
            .output()
            .await
            .expect("the guard's start");
        assert!(out.success(), "{choice}: {out:?}");
    }
    println!("owner: ready");
    for i in 0..60 {
        let out = sh(choice, "echo ok")
            .pty(24, 80)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: start {i}: {e}"));
        assert_eq!(
            out.outcome(),
            pkit::Outcome::Exited(0),
            "{choice}: start {i}"
        );
        assert!(
            out.stdout_str().contains("ok"),
            "{choice}: start {i}: {out:?}"
        );
    }
    println!("owner: done");
}

/// This test binary run again as a helper owner: only the test `test`
/// (`--exact`), with `key=value` in its environment, stdout piped (see
/// [`tagged_lines`]), stderr discarded; killed and reaped when dropped.
#[allow(dead_code)]
pub fn helper_owner(test: &str, key: &str, value: &str) -> ChildOnDrop {
    ChildOnDrop(
        helper_owner_command(test, key, value)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the helper owner starts"),
    )
}

/// The command of [`helper_owner`], to be given more (an environment, its
/// stdio) before it is started.
#[allow(dead_code)]
pub fn helper_owner_command(test: &str, key: &str, value: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("own path"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(key, value);
    cmd
}

/// What follows `tag` on each line of `child`'s piped stdout, as the lines
/// come, from a thread that reads the pipe to its end (so a helper that
/// goes on writing never blocks on it).
#[allow(dead_code)]
pub fn tagged_lines(
    child: &mut std::process::Child,
    tag: &'static str,
) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("a piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split(tag).nth(1) {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    rx
}

/// A directory for swapping a stdio file for a FIFO under pkit's open: a
/// regular file `in` (holding "looked up\n"), a FIFO `fifo`, and `keep`,
/// a second name of that FIFO that survives a rename of `fifo` over `in`.
pub fn fifo_swap_dir(tag: &str) -> (TempPath, PathBuf, PathBuf, PathBuf) {
    let dir = TempPath::new(tag);
    std::fs::create_dir(dir.path()).unwrap();
    let (path, fifo, keep) = (
        dir.path().join("in"),
        dir.path().join("fifo"),
        dir.path().join("keep"),
    );
    std::fs::write(&path, "looked up\n").unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    std::fs::hard_link(&fifo, &keep).unwrap();
    (dir, path, fifo, keep)
}

/// The prefix of every cgroup directory name of the groups of process
/// `pid` of this pid namespace: `pkit-<pid>.<pid namespace>.` (the owner's
/// start time and the group's count follow; see the library's
/// `sys/linux/names.rs`). Without the namespace, a pkit of another pid
/// namespace with the same pid (another run of the suite under `unshare
/// -pf`) would be taken for `pid`. Works for a dead `pid` too.
pub fn name_prefix(pid: u32) -> String {
    format!("pkit-{pid}.{}.", pid_ns())
}

/// The inode number of this process's pid namespace.
pub fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| {
        std::fs::metadata("/proc/self/ns/pid")
            .expect("this process's pid namespace")
            .ino()
    })
}

//! A hostile user of what landed on 2026-12-04 (session e): forked copies
//! of the owner and the guard's socket (`sys/guard/copies.rs`).
//!
//! Helpers are this test binary run again (a test that does nothing unless
//! its variable is set), as in `attack_dec04d.rs`.

mod common;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Marks a run of this binary as [`forking_owner`].
const FORKING_OWNER: &str = "PKIT_D04E_FORKING_OWNER";

/// At most this many forks [`fork_copies_meanwhile`] leaves about.
const MAX_FORKS: usize = 400;

/// The `sleep`s [`forking_owner`] starts while it forks (`gate`), or after.
const STARTS: usize = 10;

/// This process's descriptors that are sockets (each guard's owner end and
/// the dead socket that replaces it in a copy among them).
fn socket_fds() -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            (n > 2 && link.to_string_lossy().starts_with("socket:")).then_some(n)
        })
        .collect();
    out.sort_unstable();
    out
}

/// A start with a `pre_exec` hook (a forked child) whose `keep_fds`
/// targets are the numbers of the owner's sockets, the guard's end among
/// them (the guard's end is usually 3, the number a kept descriptor is
/// most often given): the program gets every one of them as it was kept.
/// (Failed before: the child replaced the guard's number with a dead
/// socket after it had placed the kept descriptor there, and the program
/// found it closed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_descriptors_on_the_guards_numbers_reach_a_pre_exec_child() {
    if std::env::var(FORKING_OWNER).is_ok() {
        return;
    }
    let suite = begin("kept_descriptors_on_the_guards_numbers").await;
    for choice in mechanisms() {
        if skip_on_portable(choice, "pre_exec hooks") {
            continue;
        }
        // The guard is started by a process's first group.
        let _group = group(choice);
        let file = TempPath::new("d04e-kept");
        std::fs::write(file.path(), "kept").unwrap();
        let kept = std::fs::File::open(file.path()).unwrap();
        let targets: Vec<i32> = socket_fds().into_iter().filter(|&n| n < 1000).collect();
        assert!(!targets.is_empty(), "{choice}: no socket (no guard?)");
        let script = r#"for n; do readlink "/proc/$$/fd/$n" || echo "$n closed"; done"#;
        let cmd = sh(choice, script)
            .args(targets.iter().map(|n| n.to_string()))
            .keep_fds(targets.iter().map(|&n| (kept.as_raw_fd(), n)));
        // SAFETY: the hook does nothing.
        let cmd = unsafe { cmd.pre_exec(|| Ok(())) };
        let out = cmd.output().await.unwrap();
        assert!(out.success(), "{choice}: {}", out.stderr_str());
        let stdout = out.stdout_str();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), targets.len(), "{choice}: {lines:?}");
        for (n, line) in targets.iter().zip(&lines) {
            assert_eq!(
                *line,
                file.as_str(),
                "{choice}: descriptor {n}, kept for a child with a pre_exec hook, \
                 is not the kept file in the program (sockets here: {targets:?})"
            );
        }
    }
    suite.end().await;
}

/// A copy of the owner (a fork without exec) that puts a file of its own
/// at the numbers of the owner's sockets (as a daemon that closes every
/// descriptor it inherited and opens its own reuses them), then forks
/// again: the copy's copy has that file at each number, as the copy left
/// it. (Failed before: the second fork replaced the guard's number with
/// the dead socket's number's descriptor, the copy's file there now,
/// close-on-exec.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_copy_keeps_what_the_copy_put_at_the_guards_numbers() {
    if std::env::var(FORKING_OWNER).is_ok() {
        return;
    }
    let suite = begin("a_copy_of_a_copy_keeps_the_guards_numbers").await;
    for choice in mechanisms() {
        // The guard is started by a process's first group.
        let _group = group(choice);
        let file = TempPath::new("d04e-reused");
        std::fs::write(file.path(), "the copy's").unwrap();
        let reused = std::fs::File::open(file.path()).unwrap();
        let fd = reused.as_raw_fd();
        let numbers: Vec<i32> = socket_fds().into_iter().filter(|&n| n < 1000).collect();
        assert!(!numbers.is_empty(), "{choice}: no socket (no guard?)");
        // Raw: the case under test is the application's own forks.
        // SAFETY: the children make only async-signal-safe calls (fstat,
        // dup2, fork, fcntl, waitpid, _exit) on memory prepared before the
        // fork, and never return into the harness.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
        if child == 0 {
            // SAFETY: as above.
            unsafe {
                let mut want: libc::stat = std::mem::zeroed();
                if libc::fstat(fd, &mut want) != 0 {
                    libc::_exit(10);
                }
                for &n in &numbers {
                    if libc::dup2(fd, n) != n {
                        libc::_exit(11);
                    }
                }
                let grandchild = libc::fork();
                if grandchild == 0 {
                    for &n in &numbers {
                        let mut got: libc::stat = std::mem::zeroed();
                        if libc::fstat(n, &mut got) != 0
                            || (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino)
                        {
                            libc::_exit(1);
                        }
                        // dup2 leaves it inheritable; a dup3 over it
                        // would not.
                        if libc::fcntl(n, libc::F_GETFD) & libc::FD_CLOEXEC != 0 {
                            libc::_exit(2);
                        }
                    }
                    libc::_exit(0);
                }
                let mut status = 0;
                if grandchild < 0 || libc::waitpid(grandchild, &mut status, 0) != grandchild {
                    libc::_exit(12);
                }
                libc::_exit(if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    13
                });
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is ours.
        while unsafe { libc::waitpid(child, &mut status, 0) } != child {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR),
                "waitpid"
            );
        }
        assert!(
            libc::WIFEXITED(status),
            "{choice}: the copy ended by a signal"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "{choice}: the copy's copy did not find the copy's file at each of \
             {numbers:?} (1: another file there, 2: the right file, but \
             close-on-exec: replaced by a dup3; 10 and up: the copy failed)"
        );
    }
    suite.end().await;
}

/// Forks copies of this process without exec from a new thread (each
/// sleeps in `pause`; at most [`MAX_FORKS`], one about every millisecond)
/// until the returned function is called, which returns their pids.
fn fork_copies_meanwhile() -> impl FnOnce() -> Vec<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    let forked = Arc::new(AtomicUsize::new(0));
    let forker = {
        let (stop, forked) = (stop.clone(), forked.clone());
        std::thread::spawn(move || {
            let mut pids = Vec::new();
            while !stop.load(Ordering::Relaxed) && pids.len() < MAX_FORKS {
                // Raw: the case under test is the application's own fork
                // without exec, from another thread than pkit's.
                // SAFETY: the child makes only async-signal-safe calls
                // (alarm, pause) and never returns into the harness.
                let child = unsafe { libc::fork() };
                assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
                if child == 0 {
                    // SAFETY: as above.
                    unsafe {
                        libc::alarm(120);
                        loop {
                            libc::pause();
                        }
                    }
                }
                pids.push(child);
                forked.fetch_add(1, Ordering::Relaxed);
                // Pacing only (how many copies are left about).
                std::thread::sleep(Duration::from_millis(1));
            }
            pids
        })
    };
    while forked.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    move || {
        stop.store(true, Ordering::Relaxed);
        forker.join().unwrap()
    }
}

/// Runs as an owner when [`FORKING_OWNER`] is set, while a thread forks
/// copies of it ([`fork_copies_meanwhile`]): `guard`, while it makes its
/// first group (which starts its guard), then starts a tree in it; `gate`,
/// while it starts [`STARTS`] `sleep`s in a group made before. Says the
/// copies' and the processes' pids, `ready`, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forking_owner() {
    let Ok(mode) = std::env::var(FORKING_OWNER) else {
        return;
    };
    let choice = pkit::MechanismChoice::from_env().unwrap();
    let mut stop = (mode == "guard").then(fork_copies_meanwhile);
    let group = pkit::Group::builder().mechanism(choice).build().unwrap();
    let copies = match stop.take() {
        Some(stop) => stop(),
        None => Vec::new(),
    };
    for pid in copies {
        println!("D04E copy {pid}");
    }
    let stop = (mode == "gate").then(fork_copies_meanwhile);
    let mut started = Vec::new();
    for _ in 0..STARTS {
        let p = group
            .start(&pkit::Command::new("sleep").arg("300"))
            .unwrap();
        println!("D04E tree {}", p.pid());
        started.push(p);
    }
    for pid in stop.map(|stop| stop()).unwrap_or_default() {
        println!("D04E copy {pid}");
    }
    let mut p = group
        .start(
            &pkit::Command::new("sh")
                .args(["-c", TREE_TO_STDOUT])
                .stream_lines(),
        )
        .unwrap();
    let mut lines = p.lines();
    println!("D04E tree {}", p.pid());
    while let Some(l) = lines.next_line().await {
        if l.text == "ready" {
            break;
        }
        println!("D04E tree {}", l.text);
    }
    assert!(group.guarded(), "{choice}: {}", group.description());
    println!("D04E ready");
    std::hint::black_box((&group, &p, &started));
    std::future::pending::<()>().await;
}

/// Runs [`forking_owner`] in `mode`; once it is ready, SIGKILLs it and
/// checks that its processes are gone. Kills its copies, and everything
/// if it never gets ready (`Err(true)`), or if its processes outlive it
/// (`Err(false)`).
async fn owner_killed_after_forks(mode: &str) -> Result<usize, bool> {
    let mut child = helper_owner("forking_owner", FORKING_OWNER, mode);
    let rx = tagged_lines(&mut child, "D04E ");
    let mut tree = Vec::new();
    let mut copies = Vec::new();
    let ready = loop {
        let Ok(line) = rx.recv_timeout(DEADLINE * 6) else {
            break false;
        };
        match line.split_once(' ') {
            Some(("tree", pid)) => tree.push(pid.parse::<u32>().unwrap()),
            Some(("copy", pid)) => copies.push(pid.parse::<u32>().unwrap()),
            _ if line == "ready" => break true,
            _ => {}
        }
    };
    let _cleanup = KillOnDrop::new(tree.clone());
    if !ready {
        // Its copies are printed once the forks stop: kill its children.
        copies.extend(children_of(child.id()).into_iter().map(|(pid, _, _)| pid));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = wait_gone(&tree, DEADLINE * 3).await;
    for &pid in &copies {
        kill_pid(pid);
    }
    match (ready, gone) {
        (false, _) => Err(true),
        (true, Err(_)) => Err(false),
        (true, Ok(())) => Ok(copies.len()),
    }
}

/// An owner SIGKILLed after a thread of it forked copies of it (no exec)
/// while it started its guard: its group's tree goes with it, whichever
/// copy still lives. (Failed before: a copy forked between the guard's
/// socket being made and the guard reporting in kept the owner's end, and
/// the tree outlived the owner.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_forking_while_its_guard_starts_takes_its_groups_when_killed() {
    if std::env::var(FORKING_OWNER).is_ok() {
        return;
    }
    let suite = begin("an_owner_forking_while_its_guard_starts").await;
    let result = owner_killed_after_forks("guard").await;
    assert!(
        result.is_ok(),
        "{}",
        if result == Err(true) {
            "the owner never said ready"
        } else {
            "a killed owner's tree outlived it while copies it forked as its guard started live"
        }
    );
    suite.end().await;
}

/// Starts while a thread of the owner forks copies of it (no exec) return,
/// and the owner SIGKILLed takes them along. (Failed before on the
/// portable backend, `PKIT_MECHANISM=portable`, the only one on macOS and
/// the BSDs: a start through the trampoline waited for end of file on its
/// gate socket (`unix/spawn.rs`, `Gated::open`), and a copy forked while
/// the child's end was open in the owner (from `gate_pair` until
/// `posix_spawn` returned) held that end for as long as it lived: 'the
/// owner never said ready', its thread in `recv` on the gate. The exec is
/// now reported through a pipe the trampoline makes itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_the_owner_forks_return() {
    if std::env::var(FORKING_OWNER).is_ok() {
        return;
    }
    let suite = begin("starts_while_the_owner_forks_return").await;
    let result = owner_killed_after_forks("gate").await;
    assert!(
        result.is_ok(),
        "{}",
        if result == Err(true) {
            "the owner never said ready: a start hung"
        } else {
            "a killed owner's processes outlived it"
        }
    );
    suite.end().await;
}

/// A started program's descriptors, read from outside as soon as the
/// start returns: its program is executed by then (`/proc/<pid>/exe` is
/// `sleep`), and it holds its stdio and the descriptors it was given
/// (`keep_fds`), nothing of the start (on the portable backend: neither
/// the gate socket nor the exec report pipe the trampoline passes the
/// owner). A guard of the exec report, with and without spawn options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_program_holds_only_its_stdio_and_kept_descriptors() {
    if std::env::var(FORKING_OWNER).is_ok() {
        return;
    }
    let suite = begin("a_started_program_holds_only_its_stdio_and_kept").await;
    let file = TempPath::new("d04e-kept-only");
    std::fs::write(file.path(), "kept").unwrap();
    let kept = std::fs::File::open(file.path()).unwrap();
    for choice in mechanisms() {
        let group = group(choice);
        let plain = pkit::Command::new("sleep").arg("300");
        let with_fd = plain.clone().keep_fds([(kept.as_raw_fd(), 7)]);
        for (cmd, want) in [(plain, vec![0, 1, 2]), (with_fd, vec![0, 1, 2, 7])] {
            let p = group
                .start(&cmd)
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
            let pid = p.pid();
            let _cleanup = KillOnDrop::new(vec![pid]);
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
            assert!(
                exe.to_string_lossy().ends_with("/sleep"),
                "{choice}: the start returned before the exec: {exe:?}"
            );
            // Polled: the program's own start-up (sleep's setlocale) opens
            // and closes files of its own for a moment, which a loaded
            // machine lets this read catch. A descriptor the start left it
            // stays open, and fails the test at the deadline.
            let fds_now = || {
                let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
                    .collect();
                fds.sort_unstable();
                fds
            };
            let deadline = std::time::Instant::now() + DEADLINE;
            let mut fds = fds_now();
            while fds != want && std::time::Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
                fds = fds_now();
            }
            let links: Vec<_> = fds
                .iter()
                .map(|n| std::fs::read_link(format!("/proc/{pid}/fd/{n}")))
                .collect();
            assert_eq!(fds, want, "{choice}: {links:?}");
        }
        group.close().await.unwrap();
    }
    suite.end().await;
}

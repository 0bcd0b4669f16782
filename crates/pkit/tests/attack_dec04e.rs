//! A hostile user of what landed on 2026-12-04 (session e): forked copies
//! of the owner and the guard's socket (`sys/guard/copies.rs`).

mod common;

use std::os::fd::AsRawFd;

use common::*;

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

//! The portable Unix backend (what macOS and the BSDs run), forced on
//! Linux in every test run: posix_spawn into the group's process group,
//! children held by pid and waited for through a SIGCHLD handler that
//! chains to the application's, spawn options applied by the trampoline
//! (a new group's first process and a process joining one), typed
//! refusals for what it can't do or where there is none.
//! (`PKIT_MECHANISM=portable cargo test` runs the whole suite on it.)
//!
//! One test: the order matters (the application's SIGCHLD handler must be
//! installed before pkit's, to show that pkit's calls it).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use pkit::{Command, Error, ErrorKind, Mechanism, MechanismChoice};

static APP_SIGCHLD: AtomicU64 = AtomicU64::new(0);

extern "C" fn app_handler(_sig: libc::c_int) {
    APP_SIGCHLD.fetch_add(1, Ordering::Relaxed);
}

/// The current SIGCHLD handler's address.
fn current_sigchld_handler() -> usize {
    // SAFETY: sigaction with a null new action only reads the current one
    // into our zeroed buffer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old),
            0
        );
        old.sa_sigaction
    }
}

/// A `/proc/self/status` field of the program `sh` runs as.
fn status_field(text: &str, key: &str) -> u64 {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} in {text}"));
    u64::from_str_radix(line.trim(), 16).expect("hex mask")
}

#[tokio::test]
async fn the_portable_backend() {
    let suite = begin("the_portable_backend").await;
    let choice = MechanismChoice::Portable;

    // An application handler, installed before pkit's first spawn.
    // SAFETY: a plain one-argument handler that only bumps an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = app_handler as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
    // This thread spawns (a current-thread runtime): block SIGUSR1 here and
    // ignore SIGUSR2 process-wide. As pkit's Linux spawner does, the child
    // gets an empty mask, keeps the ignore (nohup relies on it), and gets
    // SIGPIPE (which the Rust runtime ignores) back at its default.
    // SAFETY: plain signal-mask and disposition calls on valid sets.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
    }

    // Containment: a grandchild is in the group's process group and is gone
    // once the group closes.
    let group = group(choice);
    assert_eq!(group.mechanism(), Mechanism::ProcessGroup);
    assert!(
        group.description().contains("portable backend"),
        "{}",
        group.description()
    );
    let mut tree = group
        .start(
            &Command::new("sh")
                .args(["-c", "sleep 300 & echo $!; cat /proc/self/status; wait"])
                .stream_lines(),
        )
        .expect("start the tree");
    let leader = tree.pid();
    let mut lines = tree.lines();
    let first = lines
        .next_line()
        .await
        .expect("the grandchild's pid")
        .text
        .clone();
    let grandchild: u32 = first.trim().parse().expect("a pid");
    assert_eq!(
        stat(leader).expect("leader").pgrp,
        leader,
        "leads its group"
    );
    assert_eq!(
        stat(grandchild).expect("grandchild").pgrp,
        leader,
        "the grandchild is in the group's process group"
    );
    let mut status = String::new();
    while let Some(line) = lines.next_line().await {
        status.push_str(&line.text);
        status.push('\n');
        if line.text.starts_with("SigCgt") {
            break;
        }
    }
    assert_eq!(status_field(&status, "SigBlk:"), 0, "empty signal mask");
    let ignored = status_field(&status, "SigIgn:");
    assert_ne!(
        ignored & (1 << (libc::SIGUSR2 - 1)),
        0,
        "SIGUSR2 still ignored"
    );
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE at its default"
    );

    // pkit's handler is installed now, in place of the application's, and
    // still calls it: the application keeps seeing its children's exits.
    assert_ne!(current_sigchld_handler(), app_handler as *const () as usize);
    let before = APP_SIGCHLD.load(Ordering::Relaxed);
    let out = common::sh(choice, "exit 3").output().await.expect("output");
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.mechanism(), Mechanism::ProcessGroup);
    let deadline = std::time::Instant::now() + DEADLINE;
    while APP_SIGCHLD.load(Ordering::Relaxed) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the application's SIGCHLD handler was not called"
        );
        tokio::time::sleep(POLL).await;
    }

    group.close().await.expect("close");
    assert_gone(&[leader, grandchild], "the tree after close").await;
    drop(tree);

    // No descriptor but stdio reaches the child, close-on-exec or not.
    // SAFETY: a fresh descriptor of ours, numbered 50 or above, without
    // close-on-exec.
    let stray = unsafe {
        let base = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        assert!(base >= 0);
        let high = libc::fcntl(base, libc::F_DUPFD, 50);
        libc::close(base);
        assert!(high >= 50);
        high
    };
    let out = common::cmd(choice, "ls")
        .arg("/proc/self/fd")
        .output()
        .await
        .expect("ls");
    // SAFETY: closing the descriptor opened above, which nothing else uses.
    unsafe { libc::close(stray) };
    let fds: Vec<i32> = out
        .stdout_str()
        .split_whitespace()
        .map(|f| f.parse().expect("an fd number"))
        .collect();
    assert!(
        fds.iter().all(|&fd| fd <= 3),
        "only stdio and ls's own: {fds:?}"
    );

    // Exit statuses: a code, a signal, a timeout (the tree killed).
    let out = common::sh(choice, "kill -TERM $$")
        .output()
        .await
        .expect("output");
    assert_eq!(out.signal(), Some(libc::SIGTERM), "{out:?}");
    // (A try whose shell had not printed the pid when the timeout came,
    // its start-up slow on a loaded machine, is made again with the
    // timeout doubled.)
    let mut timeout = Duration::from_millis(300);
    let pid: u32 = loop {
        let out = common::sh(choice, "sleep 300 & echo $!; wait")
            .timeout(timeout)
            .output()
            .await
            .expect("output");
        assert!(out.timed_out(), "{out:?}");
        if let Ok(pid) = out.stdout_str().trim().parse() {
            break pid;
        }
        assert!(timeout < Duration::from_secs(5), "{out:?}");
        timeout *= 2;
    };
    assert_gone(&[pid], "the timed-out tree").await;

    // The working directory, and one that can't be entered.
    let dir = std::env::temp_dir().canonicalize().expect("temp dir");
    let out = common::cmd(choice, "pwd")
        .current_dir(&dir)
        .output()
        .await
        .expect("pwd");
    assert_eq!(out.stdout_str().trim(), dir.to_str().unwrap());
    let e = common::cmd(choice, "pwd")
        .current_dir("/nonexistent/pkit-portable")
        .output()
        .await
        .expect_err("a missing working directory");
    assert!(matches!(e, Error::CurrentDir { .. }), "{e:?}");

    // A pty session: posix_spawn with POSIX_SPAWN_SETSID, the terminal
    // opened again after it (Linux makes it the controlling terminal).
    let out = common::cmd(choice, "sh")
        .args([
            "-c",
            "test -t 0 && test -t 1 && test -t 2 && echo tty; ps -o sid= -o tpgid= -p $$",
        ])
        .pty(24, 80)
        .output()
        .await
        .expect("a pty session");
    let text = out.stdout_str().replace("\r\n", "\n");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("tty"), "{text:?}");
    let ids: Vec<u32> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    // It leads its session, and its group is the terminal's foreground.
    assert_eq!(ids, [out.pid(), out.pid()], "{text:?}");

    // Spawn options for a process joining an existing group: it goes
    // through the trampoline too, which applies them before the program.
    let group = common::group(choice);
    let leader = group
        .start(&Command::new("sleep").arg("300"))
        .expect("the leader");
    let kept = TempPath::new("kept");
    std::fs::write(kept.path(), "kept\n").unwrap();
    let file = std::fs::File::open(kept.path()).unwrap();
    let mut member = group
        .start(
            &Command::new("sh")
                .args(["-c", "umask; ulimit -n; cat <&7; ps -o pgid= -p $$"])
                .umask(0o077)
                .rlimit(pkit::Resource::Nofile, 64, 64)
                .keep_fds([(std::os::fd::AsRawFd::as_raw_fd(&file), 7)])
                .stream_lines(),
        )
        .expect("a member with spawn options");
    let mut lines = member.lines();
    let mut got = Vec::new();
    while let Some(line) = lines.next_line().await {
        got.push(line.text.trim().to_string());
    }
    assert_eq!(
        got,
        ["0077", "64", "kept", &leader.pid().to_string()],
        "the member's umask, limit, kept descriptor and process group"
    );
    // A step that fails in a member's trampoline is named, and the group
    // goes on.
    let e = group
        .start(&Command::new("true").rlimit(pkit::Resource::Nofile, 1 << 40, 1 << 40))
        .expect_err("above fs.nr_open");
    assert!(
        matches!(&e, Error::ChildSetup { step: pkit::ChildStep::Rlimit, source, .. }
            if source.raw_os_error() == Some(libc::EPERM)),
        "{e:?}"
    );
    group.close().await.expect("close");
    assert_gone(&[leader.pid(), member.pid()], "the group with options").await;
    drop((leader, member, file));
    std::fs::remove_file(kept.path()).unwrap();

    // What can't cross the trampoline's exec, or would leave the group,
    // is refused, typed, and nothing is started.
    let hook = || Ok(());
    // SAFETY: the hook does nothing (and is never run: refused).
    let refused: Vec<(&str, Command)> = vec![
        ("pre_exec", unsafe {
            common::cmd(choice, "true").pre_exec(hook)
        }),
        ("setsid", common::cmd(choice, "true").setsid()),
    ];
    for (what, cmd) in refused {
        let e = cmd.output().await.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{what}: {e}");
        assert!(
            matches!(
                e,
                Error::Unsupported {
                    mechanism: Mechanism::ProcessGroup,
                    ..
                }
            ),
            "{what}: {e:?}"
        );
    }
    suite.end().await;
}

/// Without a trampoline (`PKIT_SPAWN_TRAMPOLINE=off`, as where pkit's
/// executable can't be run again, or on musl) the options only the
/// trampoline applies are refused, typed, saying why; a start without
/// them still runs. The trampoline is chosen once per process, so this
/// runs in a process of its own (`no_trampoline_helper`).
#[test]
fn spawn_options_without_a_trampoline_are_refused() {
    in_suite("spawn_options_without_a_trampoline_are_refused", || {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "no_trampoline_helper",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PKIT_SPAWN_TRAMPOLINE", "off")
            .env("PKIT_TEST_NO_TRAMPOLINE_HELPER", "1")
            .output()
            .expect("helper");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("no-trampoline-helper-ran"), "{text}");
    });
}

/// The helper of the test above: does nothing unless
/// `PKIT_TEST_NO_TRAMPOLINE_HELPER` is set.
#[tokio::test]
async fn no_trampoline_helper() {
    if std::env::var_os("PKIT_TEST_NO_TRAMPOLINE_HELPER").is_none() {
        return;
    }
    let choice = MechanismChoice::Portable;
    let out = common::sh(choice, "echo plain")
        .output()
        .await
        .expect("plain");
    assert_eq!(out.stdout_str(), "plain\n");
    // A pty session does without on Linux (the slave opened again, see
    // `tests/pty_ctty.rs`): its terminal is still its controlling one.
    let out = common::sh(choice, "cut -d' ' -f6,7 /proc/$$/stat")
        .pty(24, 80)
        .output()
        .await
        .expect("a pty session without a trampoline");
    let ids: Vec<u32> = out
        .stdout_str()
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert_eq!(ids[0], out.pid(), "leads its session");
    assert_ne!(ids[1], 0, "has a controlling terminal");
    let group = common::group(choice);
    let leader = group
        .start(&Command::new("sleep").arg("300"))
        .expect("a plain leader");
    let refused: Vec<(&str, Command)> = vec![
        ("umask", common::cmd(choice, "true").umask(0o077)),
        (
            "rlimit",
            common::cmd(choice, "true").rlimit(pkit::Resource::Nofile, 64, 64),
        ),
        ("uid", common::cmd(choice, "true").uid(65534)),
        ("keep_fds", common::cmd(choice, "true").keep_fds([(2, 7)])),
    ];
    for (what, cmd) in refused {
        for e in [
            cmd.output().await.expect_err(what),
            group.start(&cmd).expect_err(what),
        ] {
            assert!(
                matches!(&e, Error::Unsupported { mechanism: Mechanism::ProcessGroup, reason, .. }
                    if reason.contains("trampoline") && reason.contains("PKIT_SPAWN_TRAMPOLINE=off")),
                "{what}: {e:?}"
            );
        }
    }
    assert_eq!(
        group.pids().expect("pids"),
        [leader.pid()],
        "nothing else started"
    );
    group.close().await.expect("close");
    assert_gone(&[leader.pid()], "the plain leader").await;
    drop(leader);
    println!("no-trampoline-helper-ran");
}

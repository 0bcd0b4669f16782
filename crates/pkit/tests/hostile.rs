//! Hostile use of the core, in every mechanism: argument lists past the
//! kernel's limits, programs that are not programs, megabytes of stdin to a
//! child that reads none, a handle dropped while a task writes to it,
//! groups dropped on other threads and runtimes, a child that closes its
//! stdout and floods its stderr, and signals raining on the spawner. Each
//! must give a typed error or the right result, never a panic or a hang,
//! and leave nothing behind.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice};
use tokio::io::AsyncWriteExt;

/// `cmd` run by a runner with the mechanism forced.
fn on(choice: MechanismChoice, cmd: Command) -> Command {
    cmd.runner(std::sync::Arc::new(pkit::SystemRunner::with_mechanism(
        choice,
    )))
}

/// An error of one of `kinds`, and no panic, for a command that can't start.
async fn refused(choice: MechanismChoice, cmd: Command, kinds: &[ErrorKind], what: &str) {
    let cmd = on(choice, cmd);
    let e = match cmd.output().await {
        Err(e) => e,
        Ok(o) => panic!("{choice}: {what}: ran: {:?}", o.outcome()),
    };
    assert!(
        kinds.contains(&e.kind()),
        "{choice}: {what}: {:?}: {e}",
        e.kind()
    );
    // The group-started path too.
    let g = group(choice);
    let e = g
        .start(&cmd)
        .err()
        .unwrap_or_else(|| panic!("{choice}: {what}: started"));
    assert!(
        kinds.contains(&e.kind()),
        "{choice}: {what} (start): {:?}: {e}",
        e.kind()
    );
    g.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_lists_past_the_kernel_limits_are_typed_errors() {
    let suite = begin("argv").await;
    let too_long = [ErrorKind::Spawn, ErrorKind::InvalidInput];
    for choice in mechanisms() {
        // One argument over MAX_ARG_STRLEN (32 pages).
        let big = "x".repeat(200 * 1024);
        refused(
            choice,
            Command::new("true").arg(&big),
            &too_long,
            "one 200 KiB argument",
        )
        .await;
        // Many arguments, 4 MiB in all (over ARG_MAX with an 8 MiB stack).
        let many: Vec<String> = (0..4096).map(|_| "y".repeat(1023)).collect();
        refused(
            choice,
            Command::new("true").args(&many),
            &too_long,
            "4 MiB of arguments",
        )
        .await;
        // The environment counts too.
        refused(
            choice,
            Command::new("true").env("PKIT_HOSTILE_BIG", &big),
            &too_long,
            "a 200 KiB environment variable",
        )
        .await;
        // Just under the limits: runs, and the child sees every byte.
        let near: Vec<String> = (0..1000).map(|_| "z".repeat(1000)).collect();
        let out = sh(choice, "echo $#")
            .args(&near)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: 1 MB of arguments: {e}"));
        assert_eq!(out.stdout_str(), "1000\n", "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_that_are_not_programs_are_typed_errors() {
    let suite = begin("not programs").await;
    let dir = TempPath::new("hostile-dir");
    std::fs::create_dir(dir.path()).unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "echo hi\n").unwrap();
    let noshebang = dir.path().join("noshebang");
    std::fs::write(&noshebang, "echo hi\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&noshebang, &empty] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let not_exec = [ErrorKind::NotExecutable, ErrorKind::Spawn];
    for choice in mechanisms() {
        refused(choice, Command::new(dir.path()), &not_exec, "a directory").await;
        refused(choice, Command::new(&plain), &not_exec, "a file without x").await;
        refused(
            choice,
            Command::new(&noshebang),
            &not_exec,
            "a script without #!",
        )
        .await;
        refused(
            choice,
            Command::new(&empty),
            &not_exec,
            "an empty executable",
        )
        .await;
        // Found on PATH but not executable there: not a `NotFound` panic.
        let e = cmd(choice, "plain")
            .env("PATH", dir.path())
            .output()
            .await
            .err()
            .unwrap_or_else(|| panic!("{choice}: a non-executable on PATH ran"));
        assert!(
            matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::NotExecutable | ErrorKind::Spawn
            ),
            "{choice}: {:?}: {e}",
            e.kind()
        );
    }
    std::fs::remove_dir_all(dir.path()).unwrap();
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_of_stdin_to_a_child_that_exits_early() {
    let suite = begin("stdin epipe").await;
    let data = vec![b'a'; 32 << 20];
    for choice in mechanisms() {
        for script in ["exit 0", "head -c 1 >/dev/null", "exec 0<&-; sleep 0.2"] {
            let out = tokio::time::timeout(
                Duration::from_secs(60),
                sh(choice, script).stdin_bytes(data.clone()).output(),
            )
            .await
            .unwrap_or_else(|_| panic!("{choice}: {script}: hung"))
            .unwrap_or_else(|e| panic!("{choice}: {script}: {e}"));
            assert!(out.success(), "{choice}: {script}: {:?}", out.outcome());
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_process_while_a_task_writes_its_stdin() {
    let suite = begin("drop while writing").await;
    for choice in mechanisms() {
        let g = group(choice);
        let mut p = g
            .start(
                &Command::new("sh")
                    .args(["-c", "sleep 300 & exec cat >/dev/null"])
                    .stdin_piped(),
            )
            .unwrap();
        let mut stdin = p.take_stdin().expect("stdin");
        let writer = tokio::spawn(async move {
            let chunk = vec![b'w'; 64 << 10];
            loop {
                if let Err(e) = stdin.write_all(&chunk).await {
                    return e;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(p);
        drop(g);
        let e = tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .unwrap_or_else(|_| panic!("{choice}: the writer hung after the drop"))
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{choice}: {e}");
    }
    suite.end().await;
}

/// Starts a tree in a new group, returns the group and the tree's pids.
async fn tree(choice: MechanismChoice) -> (pkit::Group, pkit::RunningProcess, Vec<u32>, TempPath) {
    let g = group(choice);
    let file = TempPath::new("hostile-tree");
    let p = g
        .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
        .unwrap();
    let pids = file.wait_pids().await;
    (g, p, pids, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_dropped_on_other_threads_and_runtimes() {
    let suite = begin("drop elsewhere").await;
    for choice in mechanisms() {
        // A plain thread, no runtime.
        let (g, p, pids, _f) = tree(choice).await;
        std::thread::spawn(move || {
            drop(p);
            drop(g);
        })
        .join()
        .unwrap();
        assert_gone(&pids, &format!("{choice}: dropped on a plain thread")).await;
        // Another runtime (current-thread), on its own thread.
        let (g, p, pids, _f) = tree(choice).await;
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                drop(p);
                g.close().await.unwrap();
            });
        })
        .join()
        .unwrap();
        assert_gone(&pids, &format!("{choice}: closed on another runtime")).await;
        // A group made on a runtime that is shut down before the drop.
        let (g, p, pids) = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (g, p, pids, f) = rt.block_on(tree(choice));
            drop(f);
            drop(rt);
            (g, p, pids)
        })
        .join()
        .unwrap();
        drop(p);
        drop(g);
        assert_gone(
            &pids,
            &format!("{choice}: its runtime gone before the drop"),
        )
        .await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_closed_early_while_stderr_floods() {
    let suite = begin("stderr flood").await;
    for choice in mechanisms() {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            sh(
                choice,
                "exec 1>&-; head -c 8000000 /dev/zero | tr '\\0' e >&2; echo done >&2",
            )
            .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{choice}: hung"))
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        assert_eq!(out.stdout_str(), "", "{choice}");
        let err = out.stderr_str();
        assert_eq!(err.len(), 8_000_005, "{choice}: all of stderr");
        assert!(err.ends_with("edone\n"), "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_raining_on_the_spawner() {
    let suite = begin("signals during spawn").await;
    // SIGWINCH and SIGURG are ignored by default; SIGCHLD from unrelated
    // children too: each interrupts blocking calls (EINTR) all the same
    // once a handler is installed, which tokio's signal support does.
    let mut winch =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let me = std::process::id() as i32;
    let rain = std::thread::spawn(move || {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: kill(2) on our own pid with SIGWINCH, which has a
            // handler (tokio's, installed above): no memory is touched.
            unsafe { libc::kill(me, libc::SIGWINCH) };
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let drain = tokio::spawn(async move { while winch.recv().await.is_some() {} });
    for choice in mechanisms() {
        for i in 0..60 {
            let out = sh(choice, "echo $$")
                .stdin_str("in")
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice} #{i}: {e}"));
            assert!(out.success(), "{choice} #{i}: {:?}", out.outcome());
            assert!(
                out.stdout_str().trim().parse::<u32>().is_ok(),
                "{choice} #{i}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rain.join().unwrap();
    drain.abort();
    suite.end().await;
}

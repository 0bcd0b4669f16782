//! An application that does not ignore SIGPIPE (a CLI that restores its
//! default disposition so that `| head` ends it, a C host): pkit writing a
//! child's input on its behalf must not kill it when the child exits, or
//! closes its stdin, without reading. This binary's one test sets SIGPIPE
//! to its default for the whole process: it must stay alone here.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pkit::{Command, Outcome, SystemRunner};
use tokio::io::AsyncWriteExt;

fn shell(script: &str) -> Command {
    Command::new("sh").args(["-c", script, "sh"])
}

static RAISED: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_sigpipe(_: libc::c_int) {
    RAISED.fetch_add(1, Ordering::Relaxed);
}

/// Sets SIGPIPE's disposition for the whole process: the default (death)
/// or a counting handler.
fn sigpipe(handler: Option<extern "C" fn(libc::c_int)>) {
    // SAFETY (test): this binary's only test, on SIGPIPE only.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = match handler {
            Some(f) => f as *const () as usize,
            None => libc::SIG_DFL,
        };
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut()), 0);
    }
}

/// Children that never read their input: gone at once, or with stdin
/// closed while they run on.
const UNREAD: [&str; 2] = ["exit 0", "exec 0<&-; sleep 0.2"];

fn blocking_runs(input: &[u8]) {
    for script in UNREAD {
        let cmd = shell(script).stdin_bytes(input.to_vec());
        let engine = cmd.clone().runner(Arc::new(SystemRunner::default()));
        for cmd in [cmd, engine] {
            let out = cmd.blocking().output().expect("blocking output");
            assert_eq!(out.outcome(), Outcome::Exited(0), "{script}");
        }
    }
}

async fn async_runs(input: &[u8]) {
    for script in UNREAD {
        let out = shell(script).stdin_bytes(input.to_vec()).output().await;
        assert_eq!(out.expect("output").outcome(), Outcome::Exited(0));
        let reader = std::io::Cursor::new(input.to_vec());
        let out = shell(script).stdin_reader(reader).output().await;
        assert_eq!(out.expect("reader").outcome(), Outcome::Exited(0));
    }
    // The application's own writes: an error, not a death.
    let group = pkit::Group::new().expect("group");
    let mut p = group
        .start(&Command::new("true").stdin_piped())
        .expect("start");
    let mut stdin = p.take_stdin().expect("stdin");
    p.wait().await.expect("wait");
    let mut failed = None;
    for _ in 0..50 {
        if let Err(e) = stdin.write_all(input).await {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("writes to a child gone never failed");
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    group.close().await.expect("close");
}

#[test]
fn input_for_a_child_that_never_reads_raises_no_sigpipe() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("no sigpipe"));
    // 4 KiB: written at once (the one-shot path's own write, or the
    // engine's); 200 KiB: the rest by a task on the runtime.
    let inputs = [vec![b'x'; 4096], vec![b'y'; 200 * 1024]];
    for handler in [None, Some(count_sigpipe as extern "C" fn(libc::c_int))] {
        sigpipe(handler);
        for input in &inputs {
            // Five rounds of each, all at once (each round mostly waits on
            // its children's 0.2 s): plain threads for the blocking runs,
            // the runtime for the async ones.
            std::thread::scope(|s| {
                for _ in 0..5 {
                    s.spawn(|| blocking_runs(input));
                }
                rt.block_on(async {
                    tokio::join!(
                        async_runs(input),
                        async_runs(input),
                        async_runs(input),
                        async_runs(input),
                        async_runs(input),
                    )
                });
            });
        }
    }
    assert_eq!(RAISED.load(Ordering::Relaxed), 0, "SIGPIPE raised");
    // SAFETY (test): back to what the harness had.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    std::thread::sleep(Duration::from_millis(10));
    rt.block_on(suite.end());
}

//! Attack round dec06: the library in a Rust program that uses it the ways
//! such programs do: handles moved between runtimes (one of which is gone
//! by then), groups shared by threads that start and end them at once.
//! Every mechanism. (The cases that change something of the whole process
//! are in `attack_dec06b.rs`.)

mod common;

use std::time::Duration;

use common::*;
use pkit::Command;

/// No case may take longer than this (a hang fails, never blocks).
const LONG: Duration = Duration::from_secs(60);

/// The ways a process is started in [`a_process_waited_for_on_another_runtime_than_its_start`].
#[derive(Debug, Clone, Copy)]
enum Variant {
    /// Output captured by pkit's readers (tasks of the start's runtime).
    Captured,
    /// Nothing for a task to do: stdio `/dev/null`, no bound.
    Quiet,
    /// 1 MiB of input, more than a pipe holds: a task writes the rest.
    Input,
    /// A timeout, watched by a task.
    Timeout,
    /// A cancel token, watched by a task.
    Cancel,
    /// Raw stdout, read by the caller.
    Raw,
}

/// What a variant's process runs (`$1`: a file for its input's size).
fn variant_cmd(v: Variant, file: &str, token: &pkit::CancelToken) -> Command {
    let quiet = |c: Command| c.stdout(pkit::Stdio::Null).stderr(pkit::Stdio::Null);
    let sh = |script: &str| Command::new("sh").args(["-c", script, "sh", file]);
    match v {
        Variant::Captured => sh("sleep 0.5; echo out; echo err >&2; exit 3"),
        Variant::Quiet => quiet(sh("sleep 0.5; exit 3")),
        Variant::Input => quiet(sh("sleep 0.5; wc -c > \"$1\"")).stdin_bytes(vec![b'x'; 1 << 20]),
        Variant::Timeout => {
            quiet(Command::new("sleep").arg("300")).timeout(Duration::from_millis(300))
        }
        Variant::Cancel => quiet(Command::new("sleep").arg("300")).cancel_token(token),
        Variant::Raw => sh("sleep 0.5; echo out; exit 3")
            .stdout(pkit::Stdio::Raw)
            .stderr(pkit::Stdio::Null),
    }
}

/// A process started on a runtime that is shut down (its thread ended)
/// before the process is waited for, on another runtime: the wait gives
/// the right outcome, or an error saying what was lost with the first
/// runtime (its output, its input); never a hang (a timeout or a cancel
/// token still ends it), never a success that hides a loss. Before: a
/// captured process died of SIGPIPE once its readers went with their
/// runtime, and the wait said `Signalled(13)` with empty output; a
/// process fed a large input saw it cut short and the wait said success;
/// a timeout or a cancellation never came, and the wait hung until the
/// process ended on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_waited_for_on_another_runtime_than_its_start() {
    let suite = begin("cross-runtime wait").await;
    use Variant::*;
    for choice in mechanisms() {
        for variant in [Captured, Quiet, Input, Timeout, Cancel, Raw] {
            let what = format!("{choice}: {variant:?}");
            let file = TempPath::new("cross-runtime");
            let token = pkit::CancelToken::new();
            let cmd = variant_cmd(variant, file.as_str(), &token);
            let (g, mut p) = on_short_runtime(move || {
                Box::pin(async move {
                    let g = group(choice);
                    let p = g.start(&cmd).expect("start");
                    (g, p)
                })
            });
            let pid = p.pid();
            token.cancel();
            // Kept until the wait: dropping it would close the pipe.
            let mut raw_out = p.take_stdout();
            let raw = match &mut raw_out {
                Some(raw) => {
                    use tokio::io::AsyncReadExt;
                    let mut bytes = Vec::new();
                    let read = tokio::time::timeout(LONG, raw.read_to_end(&mut bytes))
                        .await
                        .unwrap_or_else(|_| panic!("{what}: raw read hangs"));
                    Some(read.map(|_| bytes))
                }
                None => None,
            };
            let out = tokio::time::timeout(LONG, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{what}: wait hangs"));
            let lost = |out: &pkit::Result<pkit::Output>| match out {
                Err(e) => e.kind() == pkit::ErrorKind::Io && e.to_string().contains("runtime"),
                Ok(_) => false,
            };
            match variant {
                Captured => assert!(lost(&out), "{what}: {out:?}"),
                Quiet => assert_eq!(out.expect("wait").code(), Some(3), "{what}"),
                // The program reads nothing for half a second: most of
                // its input was still to be written when the runtime went.
                Input => assert!(
                    lost(&out),
                    "{what}: {out:?}, its input cut short to {:?} bytes",
                    std::fs::read_to_string(file.path())
                        .unwrap_or_default()
                        .trim()
                ),
                Timeout => assert!(out.expect("wait").timed_out(), "{what}"),
                Cancel => assert_eq!(
                    out.expect_err("cancelled").kind(),
                    pkit::ErrorKind::Cancelled,
                    "{what}"
                ),
                Raw => {
                    assert_eq!(out.expect("wait").code(), Some(3), "{what}: {raw:?}");
                    // The read end was made on the first runtime: read
                    // there or refused, never hung.
                    if let Some(Ok(bytes)) = raw {
                        assert_eq!(bytes, b"out\n", "{what}");
                    }
                }
            }
            drop(p);
            tokio::time::timeout(LONG, g.close())
                .await
                .unwrap_or_else(|_| panic!("{what}: close hangs"))
                .unwrap_or_else(|e| panic!("{what}: close: {e}"));
            assert_gone(&[pid], &what).await;
        }
        // `wait_any` too: it waits for a first exit, which only the timeout
        // brings.
        let token = pkit::CancelToken::new();
        let cmd = variant_cmd(Timeout, "", &token);
        let (g, p) = on_short_runtime(move || {
            Box::pin(async move {
                let g = group(choice);
                let p = g.start(&cmd).expect("start");
                (g, p)
            })
        });
        let mut procs = [p];
        let (i, out) = tokio::time::timeout(LONG, pkit::wait_any(&mut procs))
            .await
            .unwrap_or_else(|_| panic!("{choice}: wait_any hangs"))
            .expect("wait_any");
        assert!(
            i == 0 && out.expect("wait").timed_out(),
            "{choice}: wait_any"
        );
        drop(procs);
        g.close().await.expect("close");
    }
    suite.end().await;
}

/// A timeout whose grace is under way when the start's runtime shuts down
/// (the SIGTERM sent, the SIGKILL after the grace still to come): a wait on
/// another runtime sees the SIGKILL come at the grace's end, and the
/// output says it was needed. Before, the watch was started again only
/// while armed, so nothing sent the SIGKILL and the wait hung on a program
/// that ignores SIGTERM (rv14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_under_way_when_the_starts_runtime_goes() {
    let suite = begin("a_grace_under_way_when_the_starts_runtime_goes").await;
    for choice in mechanisms() {
        let file = TempPath::new("grace-under-way");
        let script = "trap '' TERM; echo $$ > \"$1\"; exec sleep 300";
        let cmd = graced_sh(
            script,
            &file,
            Duration::from_secs(1),
            Duration::from_secs(3),
        );
        let path = file.path().to_path_buf();
        let (g, mut p) = on_short_runtime(move || {
            Box::pin(async move {
                let g = group(choice);
                let p = g.start(&cmd).expect("start");
                // The timeout fires at 1 s (the shell has set its trap by
                // then: it writes the file after); the runtime goes once
                // the SIGTERM is out, well inside the 3 s grace.
                let written = || std::fs::read_to_string(&path).is_ok_and(|s| s.ends_with('\n'));
                let until = std::time::Instant::now() + DEADLINE;
                while !written() && std::time::Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
                (g, p)
            })
        });
        let pid = p.pid();
        let out = tokio::time::timeout(LONG, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: the wait hangs: no SIGKILL after the grace"))
            .expect("wait");
        assert!(out.timed_out(), "{choice}: {out:?}");
        assert!(
            out.killed_after_grace(),
            "{choice}: SIGTERM was ignored: {out:?}"
        );
        drop(p);
        g.close().await.expect("close");
        assert_gone(&[pid], &choice.to_string()).await;
    }
    suite.end().await;
}

/// A group made, and used, on a runtime that is gone, then used on
/// another: its starts, waits, kill and close work there; and a pipeline
/// started on the gone runtime and waited for on the other gives an error
/// saying its driver went with that runtime (before: "task 5 was
/// cancelled"), never a hang, and leaves nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_and_a_pipeline_outliving_their_runtime() {
    let suite = begin("group on another runtime").await;
    for choice in mechanisms() {
        let (g, pipe, first) = on_short_runtime(move || {
            Box::pin(async move {
                let g = group(choice);
                let mut p = g
                    .start(&Command::new("sh").args(["-c", "echo first"]))
                    .expect("start");
                let first = p.wait().await.expect("wait").stdout_str().into_owned();
                let sleeper = g.start(&Command::new("sleep").arg("300")).expect("start");
                let pipe = pkit::Pipe::new([
                    cmd(choice, "sh").args(["-c", "sleep 0.5; echo piped"]),
                    cmd(choice, "tr").args(["a-z", "A-Z"]),
                ])
                .start()
                .expect("pipe start");
                ((g, sleeper), pipe, first)
            })
        });
        assert_eq!(first, "first\n", "{choice}");
        let (g, sleeper) = g;
        let mut pipe = pipe;
        let pids = pipe.pids();
        let out = tokio::time::timeout(LONG, pipe.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: pipe wait hangs"));
        // Its driver (a task of the gone runtime) went with it: said so.
        let e = out.expect_err("the pipeline's driver is gone");
        assert!(
            e.kind() == pkit::ErrorKind::Io && e.to_string().contains("runtime"),
            "{choice}: {e}"
        );
        drop(pipe);
        assert_gone(&pids, &format!("{choice}: pipeline")).await;
        let mut p = g
            .start(
                &Command::new("sh")
                    .args(["-c", "cat; exit 4"])
                    .stdin_str("again\n"),
            )
            .expect("start on the other runtime");
        let out = tokio::time::timeout(LONG, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: wait hangs"))
            .expect("wait");
        assert_eq!(
            (out.code(), out.stdout_str().as_ref()),
            (Some(4), "again\n"),
            "{choice}"
        );
        let spid = sleeper.pid();
        g.kill().expect("kill");
        assert_gone(&[spid], &format!("{choice}: killed")).await;
        drop((p, sleeper));
        tokio::time::timeout(LONG, g.close())
            .await
            .unwrap_or_else(|_| panic!("{choice}: close hangs"))
            .expect("close");
    }
    suite.end().await;
}

/// A tee writer that panics on its first write (a bug in the caller's
/// writer).
struct PanickingTee;

impl std::io::Write for PanickingTee {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        panic!("the tee's own bug");
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for PanickingTee {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        panic!("the tee's own bug");
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A tee writer that panics is disabled, as a line callback that panics
/// is, and as a tee whose write fails is: the run goes on, its output is
/// still captured whole, the child is not killed by a SIGPIPE, and the
/// stream's `tee_error` says the tee panicked. Through a verb and a
/// started process, blocking and async writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_that_panics_is_disabled_and_the_run_goes_on() {
    let suite = begin("panicking tee").await;
    let script = "echo a; sleep 0.2; head -c 200000 /dev/zero; echo b >&2; exit 3";
    for choice in mechanisms() {
        for (how, started) in [("verb", false), ("start", true)] {
            for blocking in [true, false] {
                let what = format!("{choice}: {how}, blocking writer {blocking}");
                let c = sh(choice, script);
                let c = match blocking {
                    true => c.stdout_tee_blocking(PanickingTee),
                    false => c.stdout_tee(PanickingTee),
                };
                let run = async move {
                    if started {
                        let g = group(choice);
                        let out = g.start(&c).expect("start").wait().await;
                        g.close().await.expect("close");
                        out
                    } else {
                        c.output().await
                    }
                };
                let out = tokio::spawn(async move { tokio::time::timeout(LONG, run).await })
                    .await
                    .unwrap_or_else(|e| panic!("{what}: the run panicked: {e}"))
                    .unwrap_or_else(|_| panic!("{what}: hangs"))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(out.code(), Some(3), "{what}: {out:?}");
                assert_eq!(out.stdout().len(), 200_002, "{what}");
                assert_eq!(out.stderr_str(), "b\n", "{what}");
                let e = out
                    .stdout_tee_error()
                    .unwrap_or_else(|| panic!("{what}: no tee error"));
                assert!(e.to_string().contains("panicked"), "{what}: {e}");
            }
        }
    }
    suite.end().await;
}

/// Eight threads, each with a runtime of its own, make groups, start in
/// them, wait and drop them, and start in one group they share, while the
/// test's thread kills that shared group again and again and then closes
/// it: every call returns (a start into the closed group is refused with
/// `Error::Spawn`), nothing panics, and nothing is left (the suite's end
/// checks every child and cgroup of this process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_churning_groups_while_a_shared_one_is_killed_and_closed() {
    let suite = begin("thread churn").await;
    for choice in mechanisms() {
        let shared = std::sync::Arc::new(group(choice));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (shared, stop) = (shared.clone(), stop.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async move {
                        let mut pids = Vec::new();
                        let mut i = 0;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 5 {
                            i += 1;
                            let own = group(choice);
                            let sleeper =
                                own.start(&Command::new("sleep").arg("300")).expect("start");
                            pids.push(sleeper.pid());
                            let mut p = own
                                .start(&Command::new("sh").args([
                                    "-c",
                                    "exit $1",
                                    "sh",
                                    &(i % 7).to_string(),
                                ]))
                                .expect("start");
                            let out = tokio::time::timeout(LONG, p.wait())
                                .await
                                .unwrap_or_else(|_| panic!("{choice} thread {t}: wait hangs"))
                                .unwrap_or_else(|e| panic!("{choice} thread {t}: wait: {e}"));
                            assert_eq!(out.code(), Some(i % 7), "{choice} thread {t}");
                            if t % 2 == 0 {
                                drop((p, sleeper, own));
                            } else {
                                drop((p, sleeper));
                                tokio::time::timeout(LONG, own.close())
                                    .await
                                    .unwrap_or_else(|_| panic!("{choice} thread {t}: close hangs"))
                                    .expect("close");
                            }
                            match shared.start(&Command::new("sleep").arg("300")) {
                                Ok(p) => pids.push(p.pid()),
                                Err(e) => {
                                    assert_eq!(e.kind(), pkit::ErrorKind::Spawn, "{choice}: {e}")
                                }
                            }
                            if i > 200 {
                                break;
                            }
                        }
                        pids
                    })
                })
            })
            .collect();
        for _ in 0..20 {
            shared
                .kill()
                .unwrap_or_else(|e| panic!("{choice}: kill: {e}"));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::timeout(LONG, shared.close())
            .await
            .unwrap_or_else(|_| panic!("{choice}: close hangs"))
            .unwrap_or_else(|e| panic!("{choice}: close: {e}"));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut pids = Vec::new();
        for t in threads {
            pids.extend(
                tokio::task::spawn_blocking(move || t.join())
                    .await
                    .unwrap()
                    .expect("thread"),
            );
        }
        assert_gone(&pids, &format!("{choice}: every sleep")).await;
    }
    suite.end().await;
}

/// A group held by a task that never ends, on a runtime that is shut
/// down: the task is dropped by the shutdown, and the group with it, in
/// the runtime's last moments (its timers and I/O going away). The
/// group's tree is still killed and its cgroup still removed (the suite's
/// end checks the directories), as for any drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_dropped_by_its_runtimes_shutdown() {
    let suite = begin("dropped by shutdown").await;
    for choice in mechanisms() {
        for flavor in ["current", "multi"] {
            let file = TempPath::new("shutdown-drop");
            let path = file.as_str().to_owned();
            let path2 = path.clone();
            std::thread::spawn(move || {
                let rt = match flavor {
                    "current" => tokio::runtime::Builder::new_current_thread(),
                    _ => tokio::runtime::Builder::new_multi_thread(),
                }
                .enable_all()
                .build()
                .expect("runtime");
                let (tx, rx) = tokio::sync::oneshot::channel();
                rt.spawn(async move {
                    let g = group(choice);
                    let mut p = g
                        .start(
                            &Command::new("sh")
                                .args(["-c", TREE_TO_FILE, "sh", &path])
                                .stream_lines(),
                        )
                        .expect("start");
                    let _lines = p.lines();
                    tx.send(()).expect("started");
                    std::future::pending::<()>().await;
                    drop((g, p));
                });
                // Driven (a current-thread runtime runs its tasks only
                // within `block_on`) until the tree is up; the task then
                // waits for ever.
                rt.block_on(async {
                    rx.await.expect("the task started its tree");
                    let deadline = std::time::Instant::now() + DEADLINE;
                    while !std::fs::read_to_string(&path2)
                        .unwrap_or_default()
                        .contains("done")
                    {
                        assert!(std::time::Instant::now() < deadline, "no tree");
                        tokio::time::sleep(POLL).await;
                    }
                });
                drop(rt);
            })
            .join()
            .expect("runtime thread");
            let pids = file.wait_pids().await;
            assert_gone(
                &pids,
                &format!("{choice}: {flavor}: dropped by the shutdown"),
            )
            .await;
        }
    }
    suite.end().await;
}

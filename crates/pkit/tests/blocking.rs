//! The blocking facade (`pkit::blocking`): the verbs, a group, a started
//! process's lines as an `Iterator`, pipes and batches — from a plain
//! thread, from many threads at once, and refused inside a runtime.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Group, Outcome};

/// Runs a test body on a plain thread (no runtime entered), bracketed by
/// the suite's begin/end on a throwaway runtime.
fn plain(name: &'static str, body: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin(name));
    body();
    rt.block_on(suite.end());
}

fn wait_gone_blocking(pids: &[u32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|&p| !pid_gone(p)) {
        assert!(Instant::now() < deadline, "{what}: {pids:?} still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_verbs_block_from_a_plain_thread() {
    plain("the_verbs_block_from_a_plain_thread", || {
        assert!(tokio::runtime::Handle::try_current().is_err());
        for choice in mechanisms() {
            let out = sh(choice, "echo hi; echo err >&2; exit 3")
                .blocking()
                .output()
                .expect("output");
            assert_eq!(out.code(), Some(3), "{choice}");
            assert_eq!(out.stdout_str(), "hi\n");
            assert_eq!(out.stderr_str(), "err\n");
            assert_eq!(out.mechanism(), expected_mechanism(choice));
            assert_eq!(
                sh(choice, "printf ' M f\\n'")
                    .blocking()
                    .run()
                    .expect("run"),
                " M f"
            );
            assert_eq!(
                sh(choice, "exit 7").blocking().exit_code().expect("code"),
                7
            );
            assert!(sh(choice, "exit 0").blocking().probe().expect("probe"));
            assert!(!sh(choice, "exit 1").blocking().probe().expect("probe"));
            assert_eq!(
                sh(choice, "exit 4").blocking().status().expect("status"),
                Outcome::Exited(4)
            );
            let err = sh(choice, "echo nope >&2; exit 2")
                .blocking()
                .run()
                .expect_err("fails");
            assert_eq!(err.to_string(), "sh: exited(2): nope");

            // A timeout kills the whole tree, grandchild included.
            // (A try whose shell had not printed the pid when the timeout
            // came, its start-up slow on a loaded machine, is made again
            // with the timeout doubled.)
            let mut timeout = Duration::from_millis(300);
            let grandchild: u32 = loop {
                let out = sh(choice, "sleep 300 & echo $!; sleep 300")
                    .timeout(timeout)
                    .blocking()
                    .output()
                    .expect("output");
                assert!(out.timed_out(), "{choice}");
                if let Ok(pid) = out.stdout_str().trim().parse() {
                    break pid;
                }
                assert!(timeout < Duration::from_secs(5), "{choice}: {out:?}");
                timeout *= 2;
            };
            wait_gone_blocking(&[grandchild], "after the timeout");

            // A pipe and a batch.
            let got = sh(choice, "printf 'b\\na\\n'")
                .pipe(cmd(choice, "sort"))
                .blocking()
                .run()
                .expect("pipe");
            assert_eq!(got, "a\nb");
            let results = pkit::blocking::output_all(
                (0..5).map(|i| sh(choice, "echo $1").arg(i.to_string())),
                2,
            );
            let texts: Vec<String> = results
                .into_iter()
                .map(|r| r.expect("ran").stdout_str().trim().to_string())
                .collect();
            assert_eq!(texts, ["0", "1", "2", "3", "4"]);
        }
    });
}

#[test]
fn a_blocking_group_starts_streams_and_kills() {
    plain("a_blocking_group_starts_streams_and_kills", || {
        for choice in mechanisms() {
            let group =
                pkit::blocking::Group::with(Group::builder().mechanism(choice)).expect("group");
            assert_eq!(group.mechanism(), expected_mechanism(choice));

            // Lines as an Iterator, in order, ending with the process.
            let mut p = group
                .start(
                    &Command::new("sh")
                        .args(["-c", "for i in 1 2 3; do echo l$i; done"])
                        .stream_lines(),
                )
                .expect("start");
            let lines: Vec<String> = p.lines().map(|l| l.text).collect();
            assert_eq!(lines, ["l1", "l2", "l3"], "{choice}");
            assert_eq!(p.wait().expect("wait").code(), Some(0));

            // wait_for_line, stdin as std::io::Write, then a kill of the group.
            let mut server = group
                .start(
                    &Command::new("sh")
                        .args(["-c", "sleep 300 & echo $!; read x; echo got-$x; wait"])
                        .stdin_piped()
                        .stream_lines(),
                )
                .expect("start");
            let line = server
                .wait_for_line(|l| l.text.parse::<u32>().is_ok(), Duration::from_secs(30))
                .expect("pid line");
            let grandchild: u32 = line.text.parse().expect("pid");
            let mut stdin = server.take_stdin().expect("stdin");
            stdin.write_all(b"yes\n").expect("write");
            drop(stdin);
            let line = server
                .wait_for_line(|l| l.text.starts_with("got-"), Duration::from_secs(30))
                .expect("echo");
            assert_eq!(line.text, "got-yes");
            assert!(
                group.pids().expect("pids").contains(&grandchild),
                "{choice}"
            );
            let report = group.shutdown(Duration::from_secs(5)).expect("shutdown");
            let _ = report;
            wait_gone_blocking(&[server.pid(), grandchild], "after shutdown");
            let out = server.wait().expect("wait");
            assert!(!out.success());
            drop(server);
            drop(group);
        }

        // Dropping a blocking group kills its tree.
        for choice in mechanisms() {
            let group =
                pkit::blocking::Group::with(Group::builder().mechanism(choice)).expect("group");
            let mut p = group
                .start(
                    &Command::new("sh")
                        .args(["-c", "sleep 300 & echo $!; wait"])
                        .stream_lines(),
                )
                .expect("start");
            let line = p
                .wait_for_line(|l| !l.text.is_empty(), Duration::from_secs(30))
                .expect("pid");
            let grandchild: u32 = line.text.parse().expect("pid");
            let sh_pid = p.pid();
            drop(p);
            assert_alive(&[sh_pid, grandchild], "the group lives");
            drop(group);
            wait_gone_blocking(&[sh_pid, grandchild], "the group dropped");
        }

        // A one-off start owns its group: the handle's drop ends the tree.
        let mut p = Command::new("sh")
            .args(["-c", "sleep 300 & echo $!; wait"])
            .stream_lines()
            .blocking()
            .start()
            .expect("start");
        let line = p
            .wait_for_line(|l| !l.text.is_empty(), Duration::from_secs(30))
            .expect("pid");
        let grandchild: u32 = line.text.parse().expect("pid");
        let sh_pid = p.pid();
        drop(p);
        wait_gone_blocking(&[sh_pid, grandchild], "the one-off handle dropped");
    });
}

#[test]
fn eight_threads_block_at_once() {
    plain("eight_threads_block_at_once", || {
        for choice in mechanisms() {
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    std::thread::spawn(move || {
                        for i in 0..5 {
                            let want = format!("{t}-{i}");
                            let got = sh(choice, "sleep 0.05; echo $1")
                                .arg(&want)
                                .blocking()
                                .run()
                                .expect("run");
                            assert_eq!(got, want, "{choice}");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("a thread failed");
            }
        }
    });
}

#[test]
fn inside_a_runtime_it_panics_with_a_clear_message() {
    plain("inside_a_runtime_it_panics_with_a_clear_message", || {
        for choice in mechanisms() {
            for flavor in ["current_thread", "multi_thread"] {
                let rt = match flavor {
                    "current_thread" => tokio::runtime::Builder::new_current_thread(),
                    _ => tokio::runtime::Builder::new_multi_thread(),
                }
                .enable_all()
                .build()
                .expect("runtime");
                let tmp = TempPath::new("refused");
                let script = format!("touch {}", tmp.as_str());
                let caught = rt.block_on(async {
                    std::panic::catch_unwind(|| sh(choice, &script).blocking().output())
                });
                let payload = caught.expect_err("refused with a panic");
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    msg.contains("pkit::blocking::output called inside a Tokio runtime context"),
                    "{choice} {flavor}: {msg}"
                );
                // Refused before anything started.
                assert!(!tmp.path().exists(), "{choice} {flavor}: the program ran");
                // Inside spawn_blocking too (a runtime is current there).
                let caught = rt.block_on(async {
                    tokio::task::spawn_blocking(move || {
                        std::panic::catch_unwind(|| pkit::blocking::Group::new().map(drop))
                    })
                    .await
                    .expect("joined")
                });
                assert!(caught.is_err(), "{choice} {flavor}");
            }
        }
    });
}

#[tokio::test]
#[should_panic(expected = "inside a Tokio runtime context")]
async fn blocking_run_in_an_async_test_panics() {
    let _ = Command::new("true").blocking().run();
}

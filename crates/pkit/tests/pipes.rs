//! Pipelines over real OS pipes: data intact, pipefail attribution in every
//! position, unchecked producers, stdin to the head, whole-chain timeout.
//! In both mechanisms. Every test that starts processes holds the suite
//! lock (see `common::begin`).

mod common;

use std::time::{Duration, Instant};

use pkit::{Command, Outcome, Pipe};

fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

/// A stage that passes its input through, says its name on stderr, and
/// exits with `code`.
fn stage(name: &str, code: i32) -> Command {
    sh(&stage_script(name, code))
}

fn stage_script(name: &str, code: i32) -> String {
    format!("cat; echo {name} >&2; exit {code}")
}

/// `stage`, run through a link to `sh` of its own, so the stage's program
/// name tells which position it holds.
fn named_stage(dir: &std::path::Path, i: usize, code: i32) -> Command {
    let link = dir.join(format!("stage{i}"));
    if !link.exists() {
        std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
    }
    Command::new(&link).args(["-c", &stage_script(&format!("s{i}"), code)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_flow_through_every_stage_intact() {
    let suite = common::begin("bytes_flow_through_every_stage_intact").await;
    for m in common::mechanisms() {
        let data: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
        let out = Pipe::new([
            Command::new("cat"),
            Command::new("cat"),
            Command::new("cat"),
        ])
        .stdin_bytes(data.clone())
        .mechanism(m)
        .output()
        .await
        .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout().len(), data.len());
        assert!(out.stdout() == data, "bytes intact");
        assert_eq!(out.stages().len(), 3);

        let up = Command::new("cat")
            .pipe(Command::new("tr").args(["a-z", "A-Z"]))
            .stdin_str("hello")
            .mechanism(m)
            .run()
            .await
            .unwrap();
        assert_eq!(up, "HELLO");

        // From a file, and from any reader.
        let file = common::temp_path(&format!("pipe-in-{m}"));
        std::fs::write(&file, "from a file\n").unwrap();
        let up = Pipe::new([Command::new("cat"), Command::new("tr").args(["a-z", "A-Z"])])
            .stdin_file(&file)
            .mechanism(m)
            .run()
            .await
            .unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(up, "FROM A FILE");
        let n = Pipe::new([Command::new("cat"), Command::new("wc").arg("-c")])
            .stdin_reader(std::io::Cursor::new(vec![b'z'; 3 << 20]))
            .mechanism(m)
            .run()
            .await
            .unwrap();
        assert_eq!(n.trim(), (3 << 20).to_string());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipefail_attribution_in_every_position() {
    let suite = common::begin("pipefail_attribution_in_every_position").await;
    let links = common::temp_path("pipes");
    std::fs::create_dir_all(&links).unwrap();
    for m in common::mechanisms() {
        for n in 2..=4 {
            // All succeed: the last stage speaks for the chain.
            let stages: Vec<Command> = (0..n).map(|i| stage(&format!("s{i}"), 0)).collect();
            let out = Pipe::new(stages)
                .stdin_str("data\n")
                .mechanism(m)
                .output()
                .await
                .unwrap();
            assert!(out.success());
            assert_eq!(out.stdout(), b"data\n");
            assert_eq!(out.stderr_str(), format!("s{}\n", n - 1));

            for fail in 0..n {
                // Stage `fail` and every later one fail; the first is blamed.
                let stages: Vec<Command> = (0..n)
                    .map(|i| named_stage(&links, i, if i >= fail { 10 + i as i32 } else { 0 }))
                    .collect();
                let out = Pipe::new(stages)
                    .stdin_str("data\n")
                    .mechanism(m)
                    .output()
                    .await
                    .unwrap();
                assert_eq!(out.code(), Some(10 + fail as i32), "n={n} fail={fail}");
                assert_eq!(
                    out.program(),
                    links.join(format!("stage{fail}")).to_str().unwrap()
                );
                assert_eq!(out.stderr_str(), format!("s{fail}\n"));
                assert_eq!(out.stdout(), b"data\n", "stdout is always the last stage's");
                assert_eq!(out.stages()[fail].code(), Some(10 + fail as i32));
                let err = Pipe::new((0..n).map(|i| stage("x", if i == fail { 3 } else { 0 })))
                    .mechanism(m)
                    .run()
                    .await
                    .unwrap_err();
                assert!(err.is_non_zero_exit());
                assert_eq!(err.output().unwrap().code(), Some(3));
                let code = Pipe::new((0..n).map(|i| stage("x", if i == fail { 4 } else { 0 })))
                    .mechanism(m)
                    .exit_code()
                    .await
                    .unwrap();
                assert_eq!(code, 4, "exit_code folds like output");
            }
        }
        // probe: the chain's answer is the last stage's (all others succeed).
        let grep = |word: &str| Command::new("grep").args(["-q", word]);
        let hi = || Command::new("echo").arg("hi");
        assert!(Pipe::new([hi(), grep("hi")])
            .mechanism(m)
            .probe()
            .await
            .unwrap());
        assert!(!Pipe::new([hi(), grep("no")])
            .mechanism(m)
            .probe()
            .await
            .unwrap());
    }
    std::fs::remove_dir_all(&links).unwrap();
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_producer_killed_by_sigpipe() {
    let suite = common::begin("unchecked_producer_killed_by_sigpipe").await;
    for m in common::mechanisms() {
        let head = Command::new("head").args(["-n", "3"]);
        let out = Pipe::new([Command::new("yes").unchecked_in_pipe(), head.clone()])
            .mechanism(m)
            .output()
            .await
            .unwrap();
        assert!(out.success(), "{:?}", out.outcome());
        assert_eq!(out.stdout(), b"y\ny\ny\n");
        assert_eq!(
            out.stages()[0].outcome(),
            Outcome::Signalled(13),
            "yes died of SIGPIPE"
        );

        let out = Pipe::new([Command::new("yes"), head])
            .mechanism(m)
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.outcome(),
            Outcome::Signalled(13),
            "checked, the producer fails the chain"
        );
        assert_eq!(out.program(), "yes");
        assert_eq!(out.stdout(), b"y\ny\ny\n");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_tears_down_every_stage_and_their_children() {
    let suite = common::begin("timeout_tears_down_every_stage_and_their_children").await;
    for m in common::mechanisms() {
        let file = common::temp_path(&format!("pipe-pids-{m}"));
        let _ = std::fs::remove_file(&file);
        let f = file.display().to_string();
        let spawner = |name: &str| {
            sh(&format!(
                "sleep 300 & echo $! >> {f}; echo $$ >> {f}; echo {name} >&2; cat; wait"
            ))
        };
        let began = Instant::now();
        let out = Pipe::new([spawner("a"), spawner("b"), spawner("c")])
            .stdin_reader(tokio::io::empty())
            .timeout(Duration::from_millis(800))
            .mechanism(m)
            .output()
            .await
            .unwrap();
        assert!(out.timed_out());
        assert!(began.elapsed() < Duration::from_secs(60));
        assert!(out.stages().iter().all(|s| s.timed_out()));
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        let pids: Vec<u32> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(pids.len(), 6, "three stages and a sleep each");
        common::assert_gone(&pids, "the torn-down tree").await;
    }
    suite.end().await;
}

#[tokio::test]
async fn an_empty_pipe_is_invalid_input() {
    let err = Pipe::new([]).output().await.unwrap_err();
    assert_eq!(err.kind(), pkit::ErrorKind::InvalidInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_over_its_capture_limit_ends_the_chain() {
    let suite = common::begin("a_stage_over_its_capture_limit_ends_the_chain").await;
    for m in common::mechanisms() {
        let err = Pipe::new([
            Command::new("yes"),
            Command::new("cat").capture_limit(1 << 20, pkit::CapturePolicy::Fail),
        ])
        .mechanism(m)
        .output()
        .await
        .unwrap_err();
        assert_eq!(err.kind(), pkit::ErrorKind::OutputLimit, "{m}: {err}");
        assert!(err.to_string().contains("cat"), "{err}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_share_one_group_over_real_pipes() {
    let suite = common::begin("stages_share_one_group_over_real_pipes").await;
    for m in common::mechanisms() {
        // Each stage tells (on stderr) what its shell's stdin and stdout
        // are, its v2 cgroup and its process group, then passes data on.
        let report = || {
            sh("echo $(readlink /proc/$$/fd/0) $(readlink /proc/$$/fd/1) \
                $(grep '^0::' /proc/$$/cgroup) pgrp=$(cut -d' ' -f5 /proc/$$/stat) >&2; cat")
        };
        let out = Pipe::new([report(), report(), report()])
            .stdin_str("data")
            .mechanism(m)
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout(), b"data");
        let seen: Vec<Vec<String>> = out
            .stages()
            .iter()
            .map(|s| {
                s.stderr_str()
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .collect();
        for pair in seen.windows(2) {
            let (up, down) = (&pair[0], &pair[1]);
            assert!(up[1].starts_with("pipe:"), "{seen:?}");
            assert_eq!(up[1], down[0], "one OS pipe from stage to stage: {seen:?}");
            assert_eq!(up[2..], down[2..], "one container: {seen:?}");
        }
        assert_ne!(seen[0][1], seen[1][1], "each link its own pipe");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stages_ok_codes_are_honoured() {
    let suite = common::begin("a_stages_ok_codes_are_honoured").await;
    for m in common::mechanisms() {
        // grep finds nothing and exits 1, which it is told is fine: last
        // stage, then a middle one.
        let none = || Command::new("grep").args(["-c", "x"]).ok_codes([0, 1]);
        let chain = Command::new("printf")
            .arg("a\nb\n")
            .pipe(none())
            .mechanism(m);
        assert_eq!(chain.run().await.unwrap(), "0", "{m}");
        assert_eq!(chain.exit_code().await.unwrap(), 1, "{m}");
        let out = Pipe::new([
            Command::new("printf").arg("a\nb\n"),
            Command::new("grep").arg("x").ok_codes([0, 1]),
            Command::new("wc").arg("-l"),
        ])
        .mechanism(m)
        .output()
        .await
        .unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(0), "{m}: wc's, not grep's");
        assert_eq!(out.stdout_str().trim(), "0");
        assert_eq!(out.stages()[1].outcome(), Outcome::Exited(1));

        // A code the stage does not list still fails the chain, blamed on
        // it, and ends what feeds it at once.
        let err = Pipe::new([
            Command::new("sleep").arg("30"),
            sh("exit 2").ok_codes([0, 1]),
            Command::new("cat"),
        ])
        .mechanism(m)
        .exit_code()
        .await
        .unwrap_err();
        let out = err.output().expect("a NonZeroExit carries the output");
        assert_eq!(out.outcome(), Outcome::Exited(2), "{m}: {err}");
        assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(9), "{m}");

        // And an accepted code ends nothing early: the producer before a
        // stage exiting 1 (accepted) is not cut, it ends on its own.
        let out = Pipe::new([
            Command::new("sleep").arg("2"),
            sh("exit 1").ok_codes([0, 1]),
        ])
        .mechanism(m)
        .output()
        .await
        .unwrap();
        assert_eq!(
            out.stages()[0].outcome(),
            Outcome::Exited(0),
            "{m}: not cut"
        );
        assert_eq!(out.outcome(), Outcome::Exited(1), "{m}: the last stage's");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_stage_with_a_retry_policy_is_refused() {
    let suite = common::begin("a_stage_with_a_retry_policy_is_refused").await;
    let retried = Command::new("true").retry(3, Duration::from_millis(1), |_| true);
    for chain in [
        Pipe::new([retried.clone(), Command::new("cat")]),
        Pipe::new([Command::new("true"), retried]),
    ] {
        let err = chain.output().await.unwrap_err();
        assert_eq!(err.kind(), pkit::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("retried"), "{err}");
        assert!(chain.start().is_err());
    }
    // One attempt is no retry: nothing is ignored.
    let once = Command::new("true").retry(1, Duration::ZERO, |_| true);
    assert!(Pipe::new([once, Command::new("true")])
        .output()
        .await
        .unwrap()
        .success());
    suite.end().await;
}

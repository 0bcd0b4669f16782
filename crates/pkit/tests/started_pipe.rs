//! A started pipeline (`Pipe::start`): the last stage's stdout as lines,
//! readiness on a server-like last stage, the head's stdin, kill and drop
//! reaching every stage and a grandchild, the pipefail fold of `wait`
//! (with the stages a failed one cut short, whether or not anyone waits),
//! shutdown, and the blocking form from a plain thread. Every mechanism.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice, Outcome, Pipe};
use tokio::io::AsyncWriteExt;

fn shc(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

/// A chain whose middle stage starts a `sleep 300` grandchild, says its
/// pid (`gc=PID`) down the chain, then passes its input on; the head and
/// the tail run until their input ends.
fn chain_with_grandchild(choice: MechanismChoice) -> Pipe {
    Pipe::new([
        Command::new("cat"),
        shc("sleep 300 & echo gc=$!; exec cat"),
        Command::new("cat"),
    ])
    .stdin_piped()
    .stream_lines()
    .mechanism(choice)
}

async fn grandchild_of(p: &mut pkit::RunningPipe) -> u32 {
    let line = p
        .wait_for_line(|l| l.text.starts_with("gc="), DEADLINE)
        .await
        .expect("the middle stage says its grandchild's pid");
    line.text[3..].parse().expect("a pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_arrive_in_order_through_three_stages() {
    let suite = begin("lines_arrive_in_order_through_three_stages").await;
    for choice in mechanisms() {
        let mut p = Pipe::new([
            Command::new("seq").args(["1", "20000"]),
            Command::new("sed").arg("s/^/n/"),
            Command::new("cat"),
        ])
        .stream_lines()
        .mechanism(choice)
        .start()
        .unwrap();
        assert_eq!(p.pids().len(), 3, "{choice}");
        assert_eq!(p.mechanism(), expected_mechanism(choice));
        let mut lines = p.lines();
        let mut got = Vec::new();
        while let Some(line) = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a line in time")
        {
            assert_eq!(line.stream, pkit::StreamKind::Stdout);
            got.push(line.text);
        }
        let want: Vec<String> = (1..=20000).map(|i| format!("n{i}")).collect();
        assert!(got == want, "{choice}: {} lines, in order", got.len());
        let out = p.wait().await.unwrap();
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        assert_eq!(out.stages().len(), 3);
        assert!(out.stdout().is_empty(), "the lines went to the stream");
        assert_eq!(p.dropped_lines(), 0);
        // A second wait gives the same result.
        assert!(p.wait().await.unwrap().success());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_line_on_a_server_like_last_stage() {
    let suite = begin("wait_for_line_on_a_server_like_last_stage").await;
    for choice in mechanisms() {
        // The tail reads its config from the chain, logs on both streams,
        // says it is ready, and serves on.
        let mut p = Pipe::new([
            shc("echo port=8080"),
            Command::new("cat"),
            shc("read cfg; echo \"loading $cfg\"; echo warming >&2; echo \"listening ($cfg)\"; exec sleep 300"),
        ])
        .stream_lines()
        .mechanism(choice)
        .start()
        .unwrap();
        let ready = p
            .wait_for_line(|l| l.text.starts_with("listening"), DEADLINE)
            .await
            .unwrap();
        assert_eq!(ready.text, "listening (port=8080)", "{choice}");
        assert!(p.is_running(), "{choice}: the server runs on");
        let tail = p.pids()[2];
        assert_alive(&[tail], "the ready server");
        // A line that never comes: NotReady at the deadline, and the chain
        // is left running.
        let err = p
            .wait_for_line(|l| l.text == "never", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), pkit::ErrorKind::NotReady, "{choice}: {err}");
        assert!(p.is_running());
        let killed = p.shutdown(DEADLINE).await.unwrap();
        assert!(!killed, "{choice}: sleep ends on SIGTERM");
        let out = p.wait().await.unwrap();
        let tail_out = &out.stages()[2];
        assert_eq!(tail_out.outcome(), Outcome::Signalled(15), "{choice}");
        // The tail's stderr is captured, not streamed.
        assert_eq!(tail_out.stderr_str(), "warming\n", "{choice}");
        assert_gone(&p.pids(), "the shut-down chain").await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_every_stage_and_a_middle_stages_grandchild() {
    let suite = begin("kill_ends_every_stage_and_a_middle_stages_grandchild").await;
    for choice in mechanisms() {
        let mut p = chain_with_grandchild(choice).start().unwrap();
        let gc = grandchild_of(&mut p).await;
        let _guard = KillOnDrop::new(vec![gc]);
        let mut pids = p.pids();
        assert_alive(&pids, "the running chain");
        assert_alive(&[gc], "the grandchild");
        pids.push(gc);
        p.kill().unwrap();
        assert_gone(&pids, "the killed chain and the grandchild").await;
        let out = p.wait().await.unwrap();
        assert_eq!(out.outcome(), Outcome::Signalled(9), "{choice}");
        assert_eq!(out.program(), "cat", "{choice}: the head is blamed");
        for s in out.stages() {
            assert_eq!(s.outcome(), Outcome::Signalled(9), "{choice}");
        }
        // Once ended, kill and signal do nothing.
        p.kill().unwrap();
        p.signal(pkit::Signal::Term).unwrap();
    }
    suite.end().await;
}

/// Every stage of a killed chain shows the signal, however many there
/// are: none sees its input end and exits by itself first. Before, the
/// started stages got their signal one by one, head first, before the
/// cgroup was frozen, so a middle stage could read end of file from its
/// killed upstream and exit 0 before its own signal came (CI, 2026-12-05:
/// `Exited(0)` where `Signalled(9)` was due). The same holds for SIGTERM
/// through `signal`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_of_a_long_chain_shows_the_signal_it_was_sent() {
    let suite = begin("every_stage_of_a_long_chain_shows_the_signal_it_was_sent").await;
    for choice in mechanisms() {
        for round in 0..40 {
            let sig = if round % 2 == 0 { 9 } else { 15 };
            let mut p = Pipe::new((0..8).map(|_| Command::new("cat")))
                .stdin_piped()
                .mechanism(choice)
                .start()
                .unwrap();
            let pids = p.pids();
            assert_alive(&pids, "the running chain");
            if sig == 9 {
                p.kill().unwrap();
            } else {
                p.signal(pkit::Signal::Term).unwrap();
            }
            let out = p.wait().await.unwrap();
            for (i, s) in out.stages().iter().enumerate() {
                assert_eq!(
                    s.outcome(),
                    Outcome::Signalled(sig),
                    "{choice}, round {round}: stage {i} of 8"
                );
            }
            assert_gone(&pids, "the signalled chain").await;
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_kills_the_chain_and_a_grandchild() {
    let suite = begin("dropping_the_handle_kills_the_chain_and_a_grandchild").await;
    for choice in mechanisms() {
        let mut p = chain_with_grandchild(choice).start().unwrap();
        let gc = grandchild_of(&mut p).await;
        let _guard = KillOnDrop::new(vec![gc]);
        let mut pids = p.pids();
        pids.push(gc);
        assert_alive(&pids, "the running chain");
        drop(p);
        assert_gone(&pids, "the dropped chain and the grandchild").await;
    }
    suite.end().await;
}

/// A failed stage cuts every stage before it short, and each shows the
/// SIGKILL that cut it, the failed stage blamed. The cut stages are
/// greps, which exit 1 at once on end of file: killed one by one, head
/// first, a grep whose upstream had died read end of file and exited 1
/// before its own SIGKILL came, and was blamed for the chain (the same
/// class as the group kill's one-by-one signals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stage_cuts_a_long_chain_short_and_is_blamed() {
    let suite = begin("a_failed_stage_cuts_a_long_chain_short_and_is_blamed").await;
    for choice in mechanisms() {
        for round in 0..20 {
            let mut stages = vec![Command::new("sleep").arg("300")];
            stages.extend((0..6).map(|_| Command::new("grep").arg("x")));
            stages.push(shc("exit 3"));
            let mut p = Pipe::new(stages).mechanism(choice).start().unwrap();
            let pids = p.pids();
            let out = p.wait().await.unwrap();
            let outcomes: Vec<Outcome> = out.stages().iter().map(|s| s.outcome()).collect();
            let cut_short = [Outcome::Signalled(9); 7];
            assert_eq!(
                (out.outcome(), out.program(), &outcomes[..7]),
                (Outcome::Exited(3), "sh", &cut_short[..]),
                "{choice}, round {round}: {outcomes:?}"
            );
            assert_gone(&pids, "the cut chain").await;
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reports_a_failing_middle_stage() {
    let suite = begin("wait_reports_a_failing_middle_stage").await;
    for choice in mechanisms() {
        // The head would run for ever; the middle stage fails on its first
        // line; the tail passes on what it got.
        let mut p = Pipe::new([
            shc("echo data; exec sleep 300"),
            shc("read l; echo \"got $l\"; echo 'bad input' >&2; exit 3"),
            Command::new("cat"),
        ])
        .stream_lines()
        .mechanism(choice)
        .start()
        .unwrap();
        let pids = p.pids();
        let got = p
            .wait_for_line(|l| l.text.starts_with("got"), DEADLINE)
            .await
            .unwrap();
        assert_eq!(got.text, "got data");
        // The failure ends what feeds it without anyone waiting: the head
        // is gone before `wait` is called.
        assert_gone(&pids, "every stage, the head cut short").await;
        let out = p.wait().await.unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(3), "{choice}");
        assert_eq!(out.program(), "sh");
        assert_eq!(out.stderr_str(), "bad input\n", "{choice}");
        let outcomes: Vec<Outcome> = out.stages().iter().map(|s| s.outcome()).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Signalled(9),
                Outcome::Exited(3),
                Outcome::Exited(0)
            ],
            "{choice}"
        );
        assert_eq!(out.stages()[1].stderr_str(), "bad input\n");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_feeds_the_first_stage_live() {
    let suite = begin("stdin_feeds_the_first_stage_live").await;
    for choice in mechanisms() {
        let mut p = Pipe::new([
            Command::new("cat"),
            Command::new("sed").args(["-u", "s/^/got:/"]),
            Command::new("cat"),
        ])
        .stdin_piped()
        .stream_lines()
        .mechanism(choice)
        .start()
        .unwrap();
        let mut stdin = p.take_stdin().expect("the head's stdin is piped");
        // One line at a time, each answered before the next is written.
        for word in ["alpha", "beta", "gamma"] {
            stdin
                .write_all(format!("{word}\n").as_bytes())
                .await
                .unwrap();
            stdin.flush().await.unwrap();
            let line = p
                .wait_for_line(|_| true, DEADLINE)
                .await
                .unwrap_or_else(|e| panic!("{choice}: {word}: {e}"));
            assert_eq!(line.text, format!("got:{word}"), "{choice}");
        }
        assert!(p.is_running(), "{choice}: the chain waits for more");
        drop(stdin); // end of file: every stage ends in turn
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .expect("the chain ends with its input")
            .unwrap();
        assert!(out.success(), "{choice}: {:?}", out.outcome());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_pipe_keeps_its_output_and_bounds_without_stream_lines() {
    let suite = begin("a_started_pipe_keeps_its_output_and_bounds_without_stream_lines").await;
    for choice in mechanisms() {
        // Without stream_lines the tail's stdout is captured for wait.
        let mut p = Pipe::new([shc("printf 'b\\na\\n'"), Command::new("sort")])
            .mechanism(choice)
            .start()
            .unwrap();
        let err = p
            .wait_for_line(|_| true, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), pkit::ErrorKind::InvalidInput, "{err}");
        let out = p.wait().await.unwrap();
        assert_eq!(out.stdout_str(), "a\nb\n", "{choice}");

        // The chain's timeout ends it with nobody waiting.
        let began = Instant::now();
        let p = Pipe::new([Command::new("sleep").arg("300"), Command::new("cat")])
            .timeout(Duration::from_millis(300))
            .mechanism(choice)
            .start()
            .unwrap();
        assert_gone(&p.pids(), "the timed-out chain").await;
        let mut p = p;
        let out = p.wait().await.unwrap();
        assert!(out.timed_out(), "{choice}: {:?}", out.outcome());
        assert!(began.elapsed() < Duration::from_secs(60));

        // A cancelled token: nothing starts.
        let token = pkit::CancelToken::new();
        token.cancel();
        let err = Pipe::new([Command::new("true")])
            .cancel_token(&token)
            .start()
            .unwrap_err();
        assert!(err.is_cancelled());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_and_cancel_reach_every_stage_and_a_grandchild() {
    let suite = begin("signal_and_cancel_reach_every_stage_and_a_grandchild").await;
    for choice in mechanisms() {
        // SIGTERM to the whole chain, the grandchild included.
        let mut p = chain_with_grandchild(choice).start().unwrap();
        let gc = grandchild_of(&mut p).await;
        let _guard = KillOnDrop::new(vec![gc]);
        let mut pids = p.pids();
        pids.push(gc);
        p.signal(pkit::Signal::Term).unwrap();
        assert_gone(&pids, "the signalled chain and the grandchild").await;
        let out = p.wait().await.unwrap();
        // A stage that died of the caller's SIGTERM cuts none short: a
        // stage still dying of it when a later one's exit was seen shows
        // the SIGTERM too, not a cut's SIGKILL.
        assert_eq!(out.outcome(), Outcome::Signalled(15), "{choice}");
        for s in out.stages() {
            assert_eq!(s.outcome(), Outcome::Signalled(15), "{choice}");
        }

        // A cancel token ends the chain and its grandchild with nobody
        // waiting; wait then says it was cancelled.
        let token = pkit::CancelToken::new();
        let mut p = chain_with_grandchild(choice)
            .cancel_token(&token)
            .start()
            .unwrap();
        let gc = grandchild_of(&mut p).await;
        let _guard = KillOnDrop::new(vec![gc]);
        let mut pids = p.pids();
        pids.push(gc);
        token.cancel();
        assert_gone(&pids, "the cancelled chain and the grandchild").await;
        assert!(p.wait().await.unwrap_err().is_cancelled(), "{choice}");
    }
    suite.end().await;
}

#[test]
fn the_blocking_form_from_a_plain_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("the_blocking_form_from_a_plain_thread"));
    let body = std::thread::spawn(|| {
        use std::io::Write;
        assert!(tokio::runtime::Handle::try_current().is_err());
        for choice in mechanisms() {
            // Lines as an Iterator, in order.
            let mut p = Pipe::new([
                Command::new("seq").args(["1", "500"]),
                Command::new("sed").arg("s/^/n/"),
                Command::new("cat"),
            ])
            .stream_lines()
            .mechanism(choice)
            .blocking()
            .start()
            .unwrap();
            let got: Vec<String> = p.lines().map(|l| l.text).collect();
            let want: Vec<String> = (1..=500).map(|i| format!("n{i}")).collect();
            assert_eq!(got, want, "{choice}");
            assert!(p.wait().unwrap().success());

            // Stdin, wait_for_line, kill with a grandchild, wait.
            let mut p = Pipe::new([
                Command::new("cat"),
                shc("sleep 300 & echo gc=$!; exec cat"),
                Command::new("cat"),
            ])
            .stdin_piped()
            .stream_lines()
            .mechanism(choice)
            .blocking()
            .start()
            .unwrap();
            let gc: u32 = p
                .wait_for_line(|l| l.text.starts_with("gc="), DEADLINE)
                .unwrap()
                .text[3..]
                .parse()
                .unwrap();
            let _guard = KillOnDrop::new(vec![gc]);
            let mut stdin = p.take_stdin().unwrap();
            stdin.write_all(b"ping\n").unwrap();
            let line = p.wait_for_line(|_| true, DEADLINE).unwrap();
            assert_eq!(line.text, "ping", "{choice}");
            let mut pids = p.pids();
            pids.push(gc);
            p.kill().unwrap();
            let out = p.wait().unwrap();
            assert_eq!(out.outcome(), Outcome::Signalled(9), "{choice}");
            let deadline = Instant::now() + DEADLINE;
            while pids.iter().any(|&p| !pid_gone(p)) {
                assert!(Instant::now() < deadline, "{choice}: {pids:?} still alive");
                std::thread::sleep(POLL);
            }

            // Dropped: everything goes.
            let p = Pipe::new([Command::new("sleep").arg("300"), Command::new("cat")])
                .mechanism(choice)
                .blocking()
                .start()
                .unwrap();
            let pids = p.pids();
            drop(p);
            let deadline = Instant::now() + DEADLINE;
            while pids.iter().any(|&p| !pid_gone(p)) {
                assert!(Instant::now() < deadline, "{choice}: {pids:?} still alive");
                std::thread::sleep(POLL);
            }
        }
    });
    body.join().expect("the plain thread");
    rt.block_on(suite.end());
}

//! RunningProcess::events: started, lines, exited — in order, in both
//! mechanisms; a timeout's outcome; a descendant holding the pipes; the
//! blocking Iterator from a plain thread.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Outcome, ProcessEvent, StreamKind};

async fn collect(events: &mut pkit::Events) -> Vec<ProcessEvent> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(e) = tokio::time::timeout_at(deadline.into(), events.next_event())
        .await
        .expect("events end")
    {
        seen.push(e);
    }
    seen
}

#[tokio::test]
async fn events_come_started_lines_exited() {
    let suite = begin("events_come_started_lines_exited").await;
    for choice in mechanisms() {
        let group = group(choice);
        let script =
            "i=0; while [ $i -lt 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; exit 3";
        let mut p = group
            .start(&Command::new("sh").args(["-c", script]).stream_lines())
            .expect("start");
        let mut events = p.events();
        let seen = collect(&mut events).await;
        assert_eq!(
            seen.first(),
            Some(&ProcessEvent::Started { pid: p.pid() }),
            "{choice}"
        );
        assert_eq!(
            seen.last(),
            Some(&ProcessEvent::Exited {
                pid: p.pid(),
                outcome: Outcome::Exited(3)
            }),
            "{choice}"
        );
        let lines: Vec<&pkit::Line> = seen[1..seen.len() - 1]
            .iter()
            .map(|e| match e {
                ProcessEvent::Line(l) => l,
                other => panic!("{choice}: only lines between: {other:?}"),
            })
            .collect();
        for (kind, prefix) in [(StreamKind::Stdout, "out"), (StreamKind::Stderr, "err")] {
            let texts: Vec<&str> = lines
                .iter()
                .filter(|l| l.stream == kind)
                .map(|l| l.text.as_str())
                .collect();
            let want: Vec<String> = (0..2000).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(texts, want, "{choice}: every {kind} line, in order");
        }
        assert!(
            events.next_event().await.is_none(),
            "nothing after the exit"
        );
        // The process is still the caller's: wait reports the same end.
        assert_eq!(p.wait().await.expect("wait").outcome(), Outcome::Exited(3));
    }
    suite.end().await;
}

#[tokio::test]
async fn a_timeout_shows_as_timed_out_and_the_tree_is_gone() {
    let suite = begin("a_timeout_shows_as_timed_out_and_the_tree_is_gone").await;
    for choice in mechanisms() {
        // A try whose shell had not printed the pid when the timeout came
        // (its start-up slow on a loaded machine) is made again with the
        // timeout doubled.
        let mut timeout = Duration::from_millis(300);
        let (_group, p, seen, grandchild) = loop {
            let group = group(choice);
            let mut p = group
                .start(
                    &Command::new("sh")
                        .args(["-c", "sleep 300 & echo $!; wait"])
                        .stream_lines()
                        .timeout(timeout),
                )
                .expect("start");
            let mut events = p.events();
            let seen = collect(&mut events).await;
            match seen.get(1) {
                Some(ProcessEvent::Line(l)) => {
                    let pid: u32 = l.text.parse().expect("pid");
                    break (group, p, seen, pid);
                }
                other => {
                    assert!(timeout < Duration::from_secs(5), "{choice}: {other:?}");
                    timeout *= 2;
                }
            }
        };
        let _guard = KillOnDrop::new(vec![grandchild]);
        assert!(
            matches!(
                seen.last(),
                Some(ProcessEvent::Exited {
                    outcome: Outcome::TimedOut,
                    ..
                })
            ),
            "{choice}: {seen:?}"
        );
        assert_gone(&[p.pid(), grandchild], "timed out").await;
    }
    suite.end().await;
}

#[tokio::test]
async fn the_exit_is_reported_while_a_descendant_holds_the_pipes() {
    let suite = begin("the_exit_is_reported_while_a_descendant_holds_the_pipes").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "sleep 300 & echo $!; echo bye; exit 0"])
                    .stream_lines(),
            )
            .expect("start");
        let mut events = p.events();
        let seen = collect(&mut events).await;
        let texts: Vec<&str> = seen
            .iter()
            .filter_map(|e| match e {
                ProcessEvent::Line(l) => Some(l.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 2, "{choice}: {seen:?}");
        assert_eq!(texts[1], "bye");
        let sleeper: u32 = texts[0].parse().expect("pid");
        let _guard = KillOnDrop::new(vec![sleeper]);
        assert!(matches!(
            seen.last(),
            Some(ProcessEvent::Exited {
                outcome: Outcome::Exited(0),
                ..
            })
        ));
        assert_alive(&[sleeper], "the group still holds it");
        drop(events);
        drop(p);
        drop(group);
        assert_gone(&[sleeper], "the group dropped").await;
    }
    suite.end().await;
}

#[tokio::test]
async fn without_a_line_stream_only_the_start_and_the_exit() {
    let suite = begin("without_a_line_stream_only_the_start_and_the_exit").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", "echo hidden; kill -9 $$"]))
            .expect("start");
        let seen = collect(&mut p.events()).await;
        assert_eq!(
            seen,
            [
                ProcessEvent::Started { pid: p.pid() },
                ProcessEvent::Exited {
                    pid: p.pid(),
                    outcome: Outcome::Signalled(9)
                }
            ],
            "{choice}"
        );
        // The capture was not taken by the stream.
        assert_eq!(p.wait().await.expect("wait").stdout_str(), "hidden\n");
    }
    suite.end().await;
}

#[test]
fn the_blocking_events_iterate_from_a_plain_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("the_blocking_events_iterate_from_a_plain_thread"));
    for choice in mechanisms() {
        let group =
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "echo a; echo b >&2"])
                    .stream_lines(),
            )
            .expect("start");
        let seen: Vec<ProcessEvent> = p.events().collect();
        assert_eq!(seen.len(), 4, "{choice}: {seen:?}");
        assert_eq!(seen[0], ProcessEvent::Started { pid: p.pid() });
        assert!(matches!(
            seen[3],
            ProcessEvent::Exited {
                outcome: Outcome::Exited(0),
                ..
            }
        ));
    }
    rt.block_on(suite.end());
}

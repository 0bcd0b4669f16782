//! `Overflow::DropNewest` and the pieces of a line cut by `max_line_bytes`:
//! a dropped piece must not upset what `first_line` and a supervisor's
//! `ready_when_line` take for a line the program wrote. A real line after
//! a cut line whose last pieces were dropped is offered; the later pieces
//! of a cut line whose first piece was dropped are not.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Overflow, Restart, Supervisor, SupervisorEvent};

/// A line of 44 bytes (cut into 6 pieces at 8 bytes) in one write, then,
/// a second later, `READY`: with room for one line, the queue keeps the
/// first piece and drops the others, the last one (which ends the cut
/// line) included. `READY` was skipped as if it were a later piece.
const CUT_THEN_READY: &str =
    "printf 'HEADBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\\n'; sleep 1; echo READY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_after_a_cut_line_whose_end_was_dropped_is_offered() {
    let suite = begin("a_line_after_a_cut_line_whose_end_was_dropped_is_offered").await;
    for choice in mechanisms() {
        let seen = sh(choice, CUT_THEN_READY)
            .max_line_bytes(8)
            .buffer_lines(1)
            .overflow(Overflow::DropNewest)
            .first_line(|l| l == "READY")
            .await
            .expect("first_line");
        assert_eq!(seen.as_deref(), Some("READY"), "{choice}");
    }
    suite.end().await;
}

/// The supervisor's readiness check reads the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readiness_line_after_a_cut_line_whose_end_was_dropped_is_seen() {
    let suite = begin("a_readiness_line_after_a_cut_line_whose_end_was_dropped_is_seen").await;
    for choice in mechanisms() {
        let script = format!("{CUT_THEN_READY}; exec sleep 300");
        let cmd = sh(choice, &script)
            .max_line_bytes(8)
            .buffer_lines(1)
            .overflow(Overflow::DropNewest);
        let mut handle = Supervisor::new(cmd)
            .mechanism(choice)
            .ready_when_line(|l| l == "READY", Duration::from_secs(5))
            .restart(Restart::Never)
            .start();
        let mut events = Vec::new();
        let deadline = std::time::Instant::now() + DEADLINE;
        while !events.iter().any(|e| {
            matches!(
                e,
                SupervisorEvent::Ready { .. } | SupervisorEvent::Unhealthy { .. }
            )
        }) {
            assert!(std::time::Instant::now() < deadline, "{choice}: {events:?}");
            match tokio::time::timeout(DEADLINE, handle.next_event()).await {
                Ok(Some(e)) => events.push(e),
                other => panic!("{choice}: {other:?} after {events:?}"),
            }
        }
        handle.stop().await.expect("stop");
        assert!(
            matches!(events.last(), Some(SupervisorEvent::Ready { .. })),
            "{choice}: {events:?}"
        );
    }
    suite.end().await;
}

/// `a`, taken at once and held by the predicate for 1.5 s; `b`, which
/// fills the queue of one line meanwhile; then the first 8 bytes of a cut
/// line (`HEADBBBB`), dropped, as the queue is full. Long after, the rest
/// of that line (`CCCCCCCC` and `DD`, the queue empty again by then), and
/// `READY`. The pieces after the dropped first one were taken for a line
/// of their own: `CCCCCCCC` was offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_pieces_of_a_line_whose_first_piece_was_dropped_are_not_offered() {
    let suite =
        begin("the_later_pieces_of_a_line_whose_first_piece_was_dropped_are_not_offered").await;
    for choice in mechanisms() {
        let script = "echo a; sleep 0.2; echo b; sleep 0.2; printf HEADBBBBCCCC; sleep 3; \
                      printf 'CCCCDD\\n'; sleep 1; echo READY";
        let seen = sh(choice, script)
            .max_line_bytes(8)
            .buffer_lines(1)
            .overflow(Overflow::DropNewest)
            .first_line(|l| {
                if l == "a" {
                    std::thread::sleep(Duration::from_millis(1500));
                }
                l.starts_with("CCCC") || l == "READY"
            })
            .await
            .expect("first_line");
        assert_eq!(seen.as_deref(), Some("READY"), "{choice}");
    }
    suite.end().await;
}

//! parse, first_line, ok_codes: async and blocking, both mechanisms
//! (`first_line` starts its own group, whose mechanism follows
//! `PKIT_MECHANISM`: the file runs under both settings).

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind};

#[tokio::test]
async fn parse_trims_and_types_the_output() {
    let suite = begin("parse_trims_and_types_the_output").await;
    for choice in mechanisms() {
        let n: i64 = sh(choice, "printf '  -42 \\n'")
            .parse()
            .await
            .expect("parse");
        assert_eq!(n, -42, "{choice}");
        let f: f64 = sh(choice, "echo 2.5").parse().await.expect("parse");
        assert_eq!(f, 2.5);
        let err = sh(choice, "echo secret-text")
            .parse::<u32>()
            .await
            .expect_err("not a number");
        assert_eq!(err.kind(), ErrorKind::Parse, "{choice}");
        assert_eq!(err.to_string(), "sh: its output does not parse as u32");
        assert!(std::error::Error::source(&err).is_some());
        // A failed run is the run's error, not a parse error.
        let err = sh(choice, "exit 3")
            .parse::<u32>()
            .await
            .expect_err("fails");
        assert_eq!(err.kind(), ErrorKind::NonZeroExit);
    }
    suite.end().await;
}

#[tokio::test]
async fn ok_codes_count_as_success() {
    let suite = begin("ok_codes_count_as_success").await;
    for choice in mechanisms() {
        let got = sh(choice, "echo none; exit 1")
            .ok_codes([0, 1])
            .run()
            .await
            .expect("run");
        assert_eq!(got, "none", "{choice}");
        let err = sh(choice, "exit 2")
            .ok_codes([0, 1])
            .run()
            .await
            .expect_err("2 is not ok");
        assert_eq!(err.kind(), ErrorKind::NonZeroExit);
        assert_eq!(
            sh(choice, "exit 1")
                .ok_codes([0, 1])
                .exit_code()
                .await
                .expect("code"),
            1
        );
        let err = sh(choice, "exit 2")
            .ok_codes([0, 1])
            .exit_code()
            .await
            .expect_err("not ok");
        assert_eq!(err.kind(), ErrorKind::NonZeroExit, "{choice}");
        // Without ok_codes, exit_code takes any code and run only 0.
        assert_eq!(sh(choice, "exit 2").exit_code().await.expect("code"), 2);
        assert!(sh(choice, "exit 1").run().await.is_err());
        // Only 3 counts: 0 is then a failure.
        assert!(sh(choice, "exit 0").ok_codes([3]).run().await.is_err());
        assert_eq!(
            sh(choice, "exit 3").ok_codes([3]).run().await.expect("ok"),
            ""
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn first_line_returns_the_match_and_ends_the_tree() {
    let suite = begin("first_line_returns_the_match_and_ends_the_tree").await;
    let tmp = TempPath::new("first-line");
    // The grandchild writes its pid where the test can find it; the
    // matching line comes before the tree would ever end by itself.
    let script = format!(
        "sleep 300 & echo $! > {}; echo noise >&2; echo one; echo listening on 8080; echo later; sleep 300",
        tmp.as_str()
    );
    let line = Command::new("sh")
        .args(["-c", &script])
        .first_line(|l| l.starts_with("listening"))
        .await
        .expect("first_line");
    assert_eq!(line.as_deref(), Some("listening on 8080"));
    let grandchild: u32 = std::fs::read_to_string(tmp.path())
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    // Gone already when it returned (a zombie awaiting init counts as gone).
    assert!(pid_gone(grandchild), "the grandchild outlived first_line");

    // Stderr lines are not looked at; no match on a success is None, on a
    // failure the run's error.
    let none = Command::new("sh")
        .args(["-c", "echo listening >&2; echo other"])
        .first_line(|l| l.starts_with("listening"))
        .await
        .expect("ran");
    assert_eq!(none, None);
    let err = Command::new("sh")
        .args(["-c", "echo nope >&2; exit 4"])
        .first_line(|_| true)
        .await
        .expect_err("failed");
    assert_eq!(err.to_string(), "sh: exited(4): nope");
    // A timeout applies.
    let err = Command::new("sh")
        .args(["-c", "sleep 300"])
        .timeout(Duration::from_millis(200))
        .first_line(|_| true)
        .await
        .expect_err("timed out");
    assert!(err.is_timeout(), "{err}");
    suite.end().await;
}

#[test]
fn the_verbs_blocking() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let suite = rt.block_on(begin("the_verbs_blocking"));
    for choice in mechanisms() {
        let n: u16 = sh(choice, "echo 7").blocking().parse().expect("parse");
        assert_eq!(n, 7);
        let line = sh(choice, "seq 1 100000")
            .blocking()
            .first_line(|l| l == "5")
            .expect("first_line");
        assert_eq!(line.as_deref(), Some("5"));
    }
    rt.block_on(suite.end());
}

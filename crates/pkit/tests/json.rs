//! The `json` feature: output_json and json_lines, async and blocking.
//! (`json_lines` starts its own group, whose mechanism follows
//! `PKIT_MECHANISM`: the file runs under both settings.)

mod common;

use common::*;
use pkit::{Command, Error, ErrorKind};

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Item {
    n: u32,
    name: String,
}

#[tokio::test]
async fn output_json_types_the_whole_stdout() {
    let suite = begin("output_json_types_the_whole_stdout").await;
    for choice in mechanisms() {
        let item: Item = sh(choice, r#"printf '{"n": 7,\n "name": "x"}\n'"#)
            .output_json()
            .await
            .expect("json");
        assert_eq!(
            item,
            Item {
                n: 7,
                name: "x".into()
            },
            "{choice}"
        );
        // Valid JSON of the wrong shape: the type, the place, never the text.
        let err = sh(
            choice,
            r#"printf '{"n": 1,\n "name": "secret-value", "n": "no"}'"#,
        )
        .output_json::<Item>()
        .await
        .expect_err("wrong shape");
        assert_eq!(err.kind(), ErrorKind::Json, "{choice}");
        let msg = err.to_string();
        assert!(!msg.contains("secret"), "{msg}");
        assert!(std::error::Error::source(&err).is_none());
        match &err {
            Error::Json { line, problem, .. } => {
                assert_eq!(*line, 2, "{msg}");
                assert_eq!(*problem, "not the expected shape", "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let err = sh(choice, "echo '[1, 2'")
            .output_json::<Vec<u32>>()
            .await
            .expect_err("cut");
        assert!(
            matches!(
                err,
                Error::Json {
                    problem: "unexpected end",
                    ..
                }
            ),
            "{err}"
        );
        let err = sh(choice, "echo 'secret garbage'")
            .output_json::<Vec<u32>>()
            .await
            .expect_err("garbage");
        assert!(
            matches!(
                err,
                Error::Json {
                    problem: "syntax error",
                    line: 1,
                    column: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("secret"));
        // A failed run is the run's error; ok_codes count.
        let err = sh(choice, "echo '[]'; exit 3")
            .output_json::<Vec<u32>>()
            .await
            .expect_err("fails");
        assert_eq!(err.kind(), ErrorKind::NonZeroExit);
        let v: Vec<u32> = sh(choice, "echo '[5]'; exit 1")
            .ok_codes([0, 1])
            .output_json()
            .await
            .expect("ok code");
        assert_eq!(v, [5]);
    }
    suite.end().await;
}

#[tokio::test]
async fn json_lines_numbers_bad_lines_and_goes_on() {
    let suite = begin("json_lines_numbers_bad_lines_and_goes_on").await;
    let script = r#"
        echo '{"n": 1, "name": "a"}'
        echo 'secret not json'
        echo
        echo '{"n": "wrong", "name": "b"}'
        echo progress >&2
        echo '{"n": 3, "name": "c"}'
    "#;
    let mut lines = Command::new("sh")
        .args(["-c", script])
        .json_lines::<Item>()
        .expect("start");
    let mut got = Vec::new();
    while let Some(item) = lines.next().await {
        got.push(item);
    }
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].as_ref().expect("first").n, 1);
    match &got[1] {
        Err(
            e @ Error::Json {
                line,
                column,
                problem,
                ..
            },
        ) => {
            assert_eq!((*line, *column, *problem), (2, 1, "syntax error"));
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The blank line 3 is skipped but counted.
    assert!(
        matches!(
            &got[2],
            Err(Error::Json {
                line: 4,
                problem: "not the expected shape",
                ..
            })
        ),
        "{:?}",
        got[2]
    );
    assert_eq!(got[3].as_ref().expect("last").name, "c");
    assert!(lines.next().await.is_none(), "ended");
    suite.end().await;
}

#[tokio::test]
async fn json_lines_ends_with_the_runs_error() {
    let suite = begin("json_lines_ends_with_the_runs_error").await;
    let mut lines = Command::new("sh")
        .args(["-c", "echo 1; echo 'fatal: it broke' >&2; exit 4"])
        .json_lines::<u32>()
        .expect("start");
    assert_eq!(lines.next().await.expect("item").expect("1"), 1);
    let err = lines.next().await.expect("the error").expect_err("failed");
    assert_eq!(err.kind(), ErrorKind::NonZeroExit);
    assert!(err.to_string().ends_with("fatal: it broke"), "{err}");
    assert!(lines.next().await.is_none());
    // A secret command's error quotes nothing.
    let mut lines = Command::new("sh")
        .args(["-c", "echo 'token' >&2; exit 4"])
        .secret_output()
        .json_lines::<u32>()
        .expect("start");
    let err = lines.next().await.expect("the error").expect_err("failed");
    assert!(!err.to_string().contains("token"), "{err}");
    // An over-long line is one error, never held whole.
    let mut lines = Command::new("sh")
        .args(["-c", "head -c 5000 /dev/zero | tr '\\0' 7; echo; echo 8"])
        .max_line_bytes(1024)
        .json_lines::<u64>()
        .expect("start");
    let first = lines.next().await.expect("item");
    assert!(
        matches!(
            first,
            Err(Error::Json {
                line: 1,
                problem: "line too long",
                ..
            })
        ),
        "{first:?}"
    );
    assert_eq!(lines.next().await.expect("item").expect("8"), 8);
    assert!(lines.next().await.is_none());
    suite.end().await;
}

/// Under `Overflow::DropNewest`, a line after an over-long one whose last
/// pieces were dropped is parsed (it was skipped as the rest of the long
/// line), and the later pieces of one whose first piece was dropped are
/// not parsed as lines of their own (they were: a parse error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_under_drop_newest_tell_pieces_from_lines() {
    let suite = begin("json_lines_under_drop_newest_tell_pieces_from_lines").await;
    for choice in mechanisms() {
        // A line cut into six pieces in one write: the queue of one line
        // keeps the first, drops the others.
        let mut lines = sh(
            choice,
            "printf '77777777777777777777777777777777777777777777\\n'; sleep 1; echo 8",
        )
        .max_line_bytes(8)
        .buffer_lines(1)
        .overflow(pkit::Overflow::DropNewest)
        .json_lines::<u64>()
        .expect("start");
        let mut got = Vec::new();
        while let Some(item) = lines.next().await {
            got.push(item.map_err(|e| e.to_string()));
        }
        assert_eq!(got.len(), 2, "{choice}: {got:?}");
        assert!(got[0].is_err(), "{choice}: {got:?}");
        assert_eq!(got[1], Ok(8), "{choice}: {got:?}");
        // `1`, taken and kept waiting on; `2`, which fills the queue; the
        // first piece of a cut line, dropped; later, the rest of that line
        // (`99999999` and `9`), then `3`.
        let mut lines = sh(
            choice,
            "echo 1; sleep 0.2; echo 2; sleep 0.2; printf 777777779999; sleep 3; \
             printf '99999\\n'; sleep 1; echo 3",
        )
        .max_line_bytes(8)
        .buffer_lines(1)
        .overflow(pkit::Overflow::DropNewest)
        .json_lines::<u64>()
        .expect("start");
        let mut got = Vec::new();
        while let Some(item) = lines.next().await {
            let item = item.map_err(|e| e.to_string());
            if item == Ok(1) {
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            }
            got.push(item);
        }
        assert_eq!(got, [Ok(1), Ok(2), Ok(3)], "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn dropping_json_lines_ends_the_tree() {
    let suite = begin("dropping_json_lines_ends_the_tree").await;
    let mut lines = Command::new("sh")
        .args(["-c", "sleep 300 & echo $!; echo $$; sleep 300"])
        .json_lines::<u32>()
        .expect("start");
    let grandchild = lines.next().await.expect("item").expect("pid");
    let shell = lines.next().await.expect("item").expect("pid");
    assert_eq!(shell, lines.pid());
    let _guard = KillOnDrop::new(vec![grandchild]);
    assert_alive(&[grandchild, shell], "before the drop");
    drop(lines);
    assert_gone(&[grandchild, shell], "after the drop").await;
    suite.end().await;
}

#[test]
fn the_blocking_forms_work_from_a_plain_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("the_blocking_forms_work_from_a_plain_thread"));
    for choice in mechanisms() {
        let v: Vec<String> = sh(choice, r#"echo '["a", "b"]'"#)
            .blocking()
            .output_json()
            .expect("json");
        assert_eq!(v, ["a", "b"], "{choice}");
    }
    let items: Vec<pkit::Result<u32>> = Command::new("sh")
        .args(["-c", "echo 1; echo x; echo 3"])
        .blocking()
        .json_lines()
        .expect("start")
        .collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().ok(), Some(&1));
    assert!(matches!(items[1], Err(Error::Json { line: 2, .. })));
    assert_eq!(items[2].as_ref().ok(), Some(&3));
    // Refused (a panic saying why) inside a runtime.
    let refused = std::panic::catch_unwind(|| {
        rt.block_on(async { Command::new("true").blocking().output_json::<u32>() })
    });
    assert!(refused.is_err());
    rt.block_on(suite.end());
}

//! Batches: results in input order and in completion order, the concurrency
//! bound, and cancellation by drop. In both mechanisms.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pkit::{Command, MechanismChoice, SystemRunner};

fn sh(m: MechanismChoice, script: &str) -> Command {
    Command::new("sh")
        .args(["-c", script])
        .runner(Arc::new(SystemRunner::with_mechanism(m)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_in_input_order_with_bounded_concurrency() {
    let suite = common::begin("results_in_input_order_with_bounded_concurrency").await;
    for m in common::mechanisms() {
        let log = common::temp_path(&format!("batch-{m}"));
        let _ = std::fs::remove_file(&log);
        let l = log.display();
        // Later commands are quicker, so completion order differs from input.
        let cmds = (0..8).map(|i| {
            let nap = 0.05 * (8 - i) as f64;
            sh(
                m,
                &format!("echo + >> {l}; sleep {nap}; echo - >> {l}; echo {i}; exit {i}"),
            )
        });
        let results = pkit::output_all(cmds, 3).await;
        assert_eq!(results.len(), 8);
        for (i, r) in results.iter().enumerate() {
            let out = r.as_ref().unwrap();
            assert_eq!(out.code(), Some(i as i32));
            assert_eq!(out.stdout_str().trim(), i.to_string());
        }
        let marks = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_file(&log).unwrap();
        let (mut now, mut peak) = (0i32, 0i32);
        for mark in marks.lines() {
            now += if mark == "+" { 1 } else { -1 };
            peak = peak.max(now);
        }
        assert!(peak <= 3, "at most 3 at once, saw {peak}");
        assert!(peak >= 2, "they did run concurrently");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_order() {
    let suite = common::begin("completion_order").await;
    for m in common::mechanisms() {
        let cmds = vec![sh(m, "sleep 1; echo slow"), sh(m, "echo fast")];
        let mut done = pkit::output_unordered(cmds, 2);
        assert_eq!(done.len(), 2);
        let (first, r) = done.next().await.unwrap();
        assert_eq!(
            (first, r.unwrap().stdout_str().trim().to_string()),
            (1, "fast".to_string())
        );
        let (second, _) = done.next().await.unwrap();
        assert_eq!(second, 0);
        assert!(done.next().await.is_none());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_batch_tears_every_run_down() {
    let suite = common::begin("dropping_the_batch_tears_every_run_down").await;
    for m in common::mechanisms() {
        let file = common::temp_path(&format!("batch-drop-{m}"));
        let _ = std::fs::remove_file(&file);
        let f = file.display();
        let cmds = (0..3).map(|_| {
            sh(
                m,
                &format!("sleep 300 & echo $! >> {f}; echo $$ >> {f}; wait"),
            )
        });
        let batch = pkit::output_unordered(cmds, 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        let pids = loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let pids: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
            if pids.len() == 6 {
                break pids;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        drop(batch);
        std::fs::remove_file(&file).unwrap();
        common::assert_gone(&pids, "the torn-down tree").await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_keeps_its_own_containment() {
    let suite = common::begin("each_command_keeps_its_own_containment").await;
    for m in common::mechanisms() {
        let dir = common::temp_path(&format!("batch-own-{m}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let d = dir.display();
        // All four run at once (each waits until all have started), then
        // say which cgroup and process group they are in.
        let cmds = (0..4).map(|i| {
            sh(
                m,
                &format!(
                    "touch {d}/{i}; n=0; while [ $(ls {d} | wc -l) -lt 4 ] && [ $n -lt 400 ]; \
                     do sleep 0.05; n=$((n+1)); done; \
                     echo $(ls {d} | wc -l) $(grep '^0::' /proc/$$/cgroup) $(cut -d' ' -f5 /proc/$$/stat)"
                ),
            )
        });
        let results = pkit::output_all(cmds, 4).await;
        std::fs::remove_dir_all(&dir).unwrap();
        let seen: Vec<String> = results
            .into_iter()
            .map(|r| r.unwrap().stdout_str().trim().to_string())
            .collect();
        assert!(
            seen.iter().all(|s| s.starts_with("4 ")),
            "all at once: {seen:?}"
        );
        // Under the cgroup mechanism each has a cgroup of its own (they
        // share the caller's process group); under the process-group
        // mechanism each leads a process group of its own.
        let key = |s: &String| -> String {
            let f: Vec<&str> = s.split_whitespace().collect();
            match m {
                MechanismChoice::ProcessGroup | MechanismChoice::Portable => {
                    f[f.len() - 1].to_string()
                }
                _ => f[1].to_string(),
            }
        };
        let mut keys: Vec<String> = seen.iter().map(key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 4, "{seen:?}");
    }
    suite.end().await;
}

/// Outside a Tokio runtime, `output_unordered` does not panic and runs
/// nothing: each command's result is a typed error.
#[test]
fn a_batch_outside_a_runtime_is_a_typed_error_per_command_not_a_panic() {
    let marker = common::TempPath::new("batch-no-runtime");
    let cmds = vec![
        Command::new("touch").arg(marker.as_str()),
        Command::new("true"),
    ];
    let mut stream = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        pkit::output_unordered(cmds, 2)
    }))
    .unwrap_or_else(|_| panic!("output_unordered panicked outside a runtime"));
    assert_eq!(stream.len(), 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut seen = Vec::new();
    while let Some((i, result)) = rt.block_on(stream.next()) {
        let err = result.expect_err("refused");
        assert_eq!(err.kind(), pkit::ErrorKind::InvalidInput, "{err}");
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, [0, 1]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.path().exists(), "the program ran");
}

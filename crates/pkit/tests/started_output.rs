//! The output of a started process: bounded when nobody reads it, never
//! blocking the child, and drained on after its handle is dropped.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice};

/// This process's resident memory, in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// How many bytes `pid` has written so far (`wchar` in `/proc/<pid>/io`).
fn written(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("io");
    text.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

fn wchan(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

/// Starts `yes` (optionally with a line stream nobody takes), never reads
/// it, and checks for 5 s that the owner's memory stays near its baseline
/// and `yes` keeps running.
async fn yes_unread(choice: MechanismChoice, stream_lines: bool) {
    let what = format!("{choice}: yes started, never read (stream_lines: {stream_lines})");
    let group = group(choice);
    let mut cmd = Command::new("yes");
    if stream_lines {
        cmd = cmd.stream_lines();
    }
    // Warm up whatever a start allocates once (runtime threads, buffers).
    let warm = group.start(&Command::new("true")).expect("start");
    drop(warm);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = rss_kib();
    let p = group.start(&cmd).expect("start yes");
    let pid = p.pid();
    let began = Instant::now();
    let mut peak = base;
    let mut progress = Vec::new();
    while began.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kib());
        progress.push(written(pid));
    }
    let grew = peak.saturating_sub(base);
    // yes keeps running: it kept writing in the last second (a writer
    // blocked on a full pipe nobody drains writes nothing).
    let n = progress.len();
    let last_second = progress[n - 1].saturating_sub(progress[n.saturating_sub(11)]);
    let stuck_in = wchan(pid);
    assert!(!pid_gone(pid), "{what}: yes died: {:?}", stat(pid));
    drop(p);
    drop(group);
    assert_gone(&[pid], &what).await;
    eprintln!("{what}: VmRSS {base} KiB, peak +{grew} KiB; yes wrote {last_second} bytes in the last second; wchan {stuck_in:?}");
    // What is kept is bounded (1 MiB, up to twice that for a tail, per
    // stream; or buffer_lines lines). On top, a read's worth of buffers: up
    // to 1 MiB of text and, for the line stream, the index of its lines
    // (24 bytes per line: 12 MiB for a MiB of `y\n`), reused read after
    // read.
    let allowed = if stream_lines { 24 } else { 8 } * 1024;
    assert!(
        grew < allowed,
        "{what}: the owner grew by {grew} KiB (from {base} KiB)"
    );
    assert!(
        last_second > 0,
        "{what}: yes wrote nothing in the last second (wchan {stuck_in:?}, bytes written {progress:?})"
    );
}

/// The case a helper run of
/// [`an_unread_started_process_costs_bounded_memory_and_keeps_running`]
/// measures, in its environment: `<mechanism> <stream_lines>`.
const UNREAD_CASE: &str = "PKIT_STARTED_OUTPUT_UNREAD_CASE";

/// Each case (mechanism x line stream or not) watches its owner's memory
/// for 5 s, so each runs in a process of its own, a helper run of this
/// test: the memory measured is that process's alone, and the cases run
/// at once (they ran one after another, alone in this binary, 20 s in
/// all). Each helper runs its case alone in its process
/// (`begin_exclusive`, its checks that nothing is left included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_started_process_costs_bounded_memory_and_keeps_running() {
    const TEST: &str = "an_unread_started_process_costs_bounded_memory_and_keeps_running";
    if let Ok(case) = std::env::var(UNREAD_CASE) {
        let alone = begin_exclusive().await;
        let (name, stream) = case.split_once(' ').expect("<mechanism> <stream_lines>");
        let choice = [
            MechanismChoice::Cgroup,
            MechanismChoice::ProcessGroup,
            MechanismChoice::Portable,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
        .expect("a mechanism");
        yes_unread(choice, stream == "true").await;
        end_exclusive(alone, TEST).await;
        return;
    }
    let suite = begin(TEST).await;
    let cases: Vec<String> = mechanisms()
        .into_iter()
        .flat_map(|c| [format!("{c} false"), format!("{c} true")])
        .collect();
    let ends = tokio::task::spawn_blocking(move || {
        let helpers: Vec<_> = cases
            .iter()
            .map(|case| {
                let helper = helper_owner_command(TEST, UNREAD_CASE, case)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("the helper starts");
                (case.clone(), helper)
            })
            .collect();
        helpers
            .into_iter()
            .map(|(case, helper)| (case, helper.wait_with_output().expect("the helper's end")))
            .collect::<Vec<_>>()
    })
    .await
    .expect("the helpers' thread");
    let mut failed = Vec::new();
    for (case, out) in &ends {
        let text = String::from_utf8_lossy(&out.stderr);
        // The case's own line (memory, bytes written), and all of its
        // output when it failed.
        for line in text
            .lines()
            .filter(|l| l.contains("yes started, never read"))
        {
            eprintln!("{line}");
        }
        if !out.status.success() {
            eprintln!(
                "case {case}: {}\n{}{text}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
            failed.push(case.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "cases failed (their output above): {failed:?}"
    );
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_with_a_line_stream_nobody_took() {
    let suite = begin("wait_returns_with_a_line_stream_nobody_took").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(&Command::new("seq").args(["1", "100000"]).stream_lines())
            .expect("start");
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: wait() is stuck behind an untaken line stream"))
            .expect("wait");
        assert!(out.success(), "{choice}: {out:?}");
        // The first lines waited for the stream; the rest were counted.
        let mut lines = p.lines();
        let mut got = 0u64;
        while let Some(_line) = lines.next_line().await {
            got += 1;
        }
        assert_eq!(got + p.dropped_lines(), 100_000, "{choice}: got {got}");
        assert!(got >= 1, "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_goes_on_logging_after_wait_for_line() {
    let suite = begin("a_server_goes_on_logging_after_wait_for_line").await;
    for choice in mechanisms() {
        let marker = TempPath::new("logged");
        let script = r#"echo ready; i=0; while [ $i -lt 100000 ]; do echo log line $i; i=$((i+1)); done; touch "$1"; exec sleep 300"#;
        let group = group(choice);
        let mut p = group
            .start(&sh(choice, script).arg(marker.as_str()).stream_lines())
            .expect("start");
        let ready = p
            .wait_for_line(|l| l.text == "ready", DEADLINE)
            .await
            .expect("ready");
        assert_eq!(ready.text, "ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !marker.path().exists() && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        let logged = marker.path().exists();
        let stuck_in = wchan(p.pid());
        // The lines that followed wait (up to buffer_lines) or are counted.
        let mut lines = p.lines();
        let mut got = 0u64;
        while got + p.dropped_lines() < 100_000 {
            match tokio::time::timeout(DEADLINE, lines.next_line()).await {
                Ok(Some(_)) => got += 1,
                other => panic!("{choice}: the stream ended early: {other:?}, {got} lines"),
            }
        }
        drop(p);
        drop(group);
        assert!(
            logged,
            "{choice}: the server stalled after wait_for_line (wchan {stuck_in:?})"
        );
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_neither_kills_nor_blocks_a_chatty_child() {
    let suite = begin("dropping_the_handle_neither_kills_nor_blocks_a_chatty_child").await;
    for choice in mechanisms() {
        let failed = TempPath::new("write-failed");
        let group = group(choice);
        // Writes a line every 10 ms, and a lot at once now and then; notes
        // a failed write (SIGPIPE ignored, so a closed pipe is EPIPE).
        let script = r#"trap '' PIPE; i=0; while :; do echo tick || { echo failed > "$1"; exit 42; }; i=$((i+1)); [ $((i % 50)) -eq 0 ] && { seq 1 20000 || { echo failed > "$1"; exit 43; }; }; sleep 0.01; done"#;
        let p = group
            .start(&sh(choice, script).arg(failed.as_str()))
            .expect("start");
        let pid = p.pid();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(p);
        // Plain SIGPIPE too: a child with the default disposition.
        let q = group
            .start(&sh(choice, "while :; do seq 1 1000; sleep 0.01; done"))
            .expect("start");
        let qpid = q.pid();
        drop(q);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let alive = !pid_gone(pid) && !pid_gone(qpid);
        let failure = std::fs::read_to_string(failed.path()).ok();
        let states = (stat(pid), stat(qpid), wchan(pid), wchan(qpid));
        drop(group);
        assert_gone(&[pid, qpid], &format!("{choice}: the group's end")).await;
        assert!(
            alive,
            "{choice}: a child died after its handle was dropped: {states:?}"
        );
        assert_eq!(failure, None, "{choice}: a write failed after the drop");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_taken_a_moment_after_the_start_loses_nothing() {
    let suite = begin("a_stream_taken_a_moment_after_the_start_loses_nothing").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("seq")
                    .args(["1", "100000"])
                    .stream_lines()
                    .buffer_lines(16),
            )
            .expect("start");
        // A little later than "right away" (a loaded machine may preempt
        // the caller between start and lines): nothing is dropped yet.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut lines = p.lines();
        let mut got = 0u64;
        while let Some(line) = lines.next_line().await {
            got += 1;
            assert_eq!(line.text, got.to_string(), "{choice}");
        }
        assert_eq!((got, p.dropped_lines()), (100_000, 0), "{choice}");
        assert!(p.wait().await.expect("wait").success());
    }
    suite.end().await;
}

#[tokio::test]
async fn a_crlf_line_exactly_at_the_cap_is_one_line() {
    let suite = begin("a_crlf_line_exactly_at_the_cap_is_one_line").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("printf")
                    .arg(r"abcd\r\nxy\r\nabcdefgh\r\n")
                    .stream_lines()
                    .max_line_bytes(4),
            )
            .expect("start");
        let mut lines = p.lines();
        let mut got = Vec::new();
        while let Some(l) = lines.next_line().await {
            got.push((l.text, l.partial));
        }
        assert!(p.wait().await.expect("wait").success());
        let want: Vec<(String, bool)> = [
            ("abcd", false),
            ("xy", false),
            ("abcd", true),
            ("efgh", false),
        ]
        .iter()
        .map(|(t, p)| (t.to_string(), *p))
        .collect();
        assert_eq!(got, want, "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_while_a_descendant_keeps_the_pipe_full() {
    let suite = begin("wait_returns_while_a_descendant_keeps_the_pipe_full").await;
    for choice in mechanisms() {
        let group = group(choice);
        // `yes` outlives its parent and keeps the pipe full; the line
        // stream (and a callback) keep the reader on the runtime.
        for stream in [true, false] {
            let mut cmd = sh(choice, "yes & sleep 0.3; exit 0").on_stdout_line(|_| {});
            if stream {
                cmd = cmd.stream_lines();
            }
            let mut p = group.start(&cmd).expect("start");
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| {
                    panic!("{choice} (stream_lines: {stream}): wait() never stopped reading")
                })
                .expect("wait");
            assert!(out.success(), "{choice}: {out:?}");
            assert!(out.stdout_total_bytes() > 0, "{choice}: {out:?}");
        }
        group.close().await.expect("close");
    }
    suite.end().await;
}

/// A process that writes nothing and exits while a descendant holds both
/// its pipes gives its readers no event before `wait` stops them (the
/// captures of both streams share one task, spawned by the first event):
/// `wait` still returns, with the exit code and empty captures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_for_a_silent_process_whose_descendant_holds_its_pipes() {
    let suite = begin("wait_returns_for_a_silent_process_whose_descendant_holds_its_pipes").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(&sh(choice, "sleep 300 & exit 3"))
            .expect("start");
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: wait() never stopped the silent readers"))
            .expect("wait");
        assert_eq!(out.code(), Some(3), "{choice}: {out:?}");
        assert_eq!(
            (out.stdout(), out.stderr()),
            (&b""[..], &b""[..]),
            "{choice}: {out:?}"
        );
        group.close().await.expect("close");
    }
    suite.end().await;
}

/// Review R9: outside a runtime, a start is refused before anything is
/// spawned (it used to panic with the child already running).
#[test]
fn a_start_outside_a_runtime_is_refused_before_spawning() {
    for choice in mechanisms() {
        let group = group(choice);
        let marker = TempPath::new("no-runtime");
        let started = std::panic::catch_unwind(|| {
            group
                .start(&Command::new("touch").arg(marker.as_str()))
                .map(|p| p.pid())
        });
        let err = started
            .unwrap_or_else(|_| panic!("{choice}: start panicked outside a runtime"))
            .expect_err("refused");
        assert_eq!(err.kind(), pkit::ErrorKind::InvalidInput, "{choice}: {err}");
        assert!(group.pids().expect("pids").is_empty(), "{choice}");
        std::thread::sleep(Duration::from_millis(200));
        assert!(!marker.path().exists(), "{choice}: the program ran");
    }
}

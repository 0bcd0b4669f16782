//! `pkit supervise`, run for real: a crashing script counted through a
//! file, the restart budget, health checks, and a stop by signal.
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::*;

/// Fails (exit 3) until its counter file says it ran twice already.
const FLAKY: &str = r#"n=$(cat "$1" 2>/dev/null || echo 0); echo $((n+1)) > "$1"; echo "attempt $n"; [ "$n" -ge 2 ] || exit 3"#;

fn json_lines(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

#[test]
fn a_crashing_program_is_restarted_until_it_runs_clean() {
    let counter = temp_path("counter");
    let out = pkit()
        .args([
            "supervise",
            "--backoff",
            "20ms",
            "--",
            "sh",
            "-c",
            FLAKY,
            "sh",
        ])
        .arg(&counter)
        .output()
        .unwrap();
    let runs = std::fs::read_to_string(&counter).unwrap();
    let _ = std::fs::remove_file(&counter);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(runs.trim(), "3", "three runs");
    // The program's own output passes through.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "attempt 0\nattempt 1\nattempt 2\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one line per ended run: {err}");
    for line in &lines[..2] {
        assert!(
            line.contains("exited with code 3 (crash); restart in"),
            "{line}"
        );
    }
    assert!(
        lines[2]
            .contains("exited with code 0 (clean); stopping: policy satisfied after 2 restarts"),
        "{}",
        lines[2]
    );
}

#[test]
fn the_restart_budget_ends_with_the_last_runs_status_in_json() {
    let out = run(&[
        "supervise",
        "--json",
        "--max-restarts",
        "2",
        "--backoff",
        "10ms,3",
        "--",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let events = json_lines(&out.stderr);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "started", "exited", "backoff", "started", "exited", "backoff", "started", "exited",
            "stopped"
        ]
    );
    assert_eq!(events[1]["exit_code"], 4);
    assert_eq!(events[1]["crashed"], true);
    assert_eq!(events[8]["reason"], "restarts_exhausted");
    assert_eq!(events[8]["restarts"], 2);
    // The pauses grow by the factor (jitter is at most 10 %).
    let (a, b) = (
        events[2]["secs"].as_f64().unwrap(),
        events[5]["secs"].as_f64().unwrap(),
    );
    assert!(b > a * 2.0, "{a} then {b}");
}

#[test]
fn a_run_that_never_prints_its_health_line_counts_as_a_crash() {
    // Healthy: the line comes, the run ends clean, the lines pass through.
    let out = run(&[
        "supervise",
        "--health-line",
        "listening on [0-9]+$",
        "--",
        "sh",
        "-c",
        "echo 'listening on port x'; echo 'now listening on 9'; echo bye >&2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "listening on port x\nnow listening on 9\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("bye\n"));

    // Never healthy: killed after the timeout, restarted, budget spent.
    let file = pid_file();
    let out = pkit()
        .args([
            "supervise",
            "--health-line",
            "listening on [0-9]+$",
            "--health-timeout",
            "300ms",
            "--max-restarts",
            "1",
            "--backoff",
            "10ms",
            "--",
            "sh",
            "-c",
        ])
        // Contains the words but does not match the pattern: never healthy.
        .arg(format!(
            "echo 'listening on port x'; sleep 300 & echo $! >> {}; wait",
            file.display()
        ))
        .output()
        .unwrap();
    let pids = read_pids(&file, 2);
    let _ = std::fs::remove_file(&file);
    assert_all_gone(&pids);
    // pkit's kill is not the program's status: 124, as timeout(1).
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("failed its health check").count(), 2, "{err}");
    // pkit's kill of an unhealthy run is labelled as pkit's, not the
    // program's crash.
    assert_eq!(
        err.matches("failed its health check, killed by SIGKILL (stopped by pkit: unhealthy)")
            .count(),
        2,
        "{err}"
    );
    assert!(!err.contains("(crash)"), "{err}");
    assert!(err.contains("restarts exhausted after 1 restarts"), "{err}");
}

#[test]
fn term_to_pkit_stops_the_run_and_its_tree() {
    let file = pid_file();
    let child = pkit()
        .args([
            "supervise",
            "--json",
            "--restart",
            "always",
            "--",
            "sh",
            "-c",
        ])
        .arg(tree_script(&file))
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .unwrap();
    let pids = read_pids(&file, 3);
    kill(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert_all_gone(&pids);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let events = json_lines(&out.stderr);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "stopped");
    assert_eq!(last["reason"], "stop_requested");
    assert_eq!(last["restarts"], 0);
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        &["supervise", "--backoff", "1s,0.5", "--", "true"][..],
        &["supervise", "--backoff", "x", "--", "true"],
        &["supervise", "--health-port", "nonsense", "--", "true"],
        &["supervise", "--restart", "sometimes", "--", "true"],
        &["supervise", "--health-line", "([a-", "--", "true"],
        &[
            "supervise",
            "--health-line",
            "a",
            "--health-port",
            "127.0.0.1:1",
            "--",
            "true",
        ],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {out:?}");
    }
    let out = run(&[
        "supervise",
        "--max-restarts",
        "0",
        "--",
        "/nonexistent/pkit-prog",
    ]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
}

#[test]
fn a_program_that_cannot_start_stops_at_once() {
    // No budget: before, this restarted for ever. `timeout` bounds the test.
    let pkit_path = pkit().get_program().to_owned();
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg(pkit_path)
        .args(["supervise", "--", "/nonexistent/pkit-prog"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not start (not_found): /nonexistent/pkit-prog: ")
            && err.contains("; stopping: cannot start after 0 restarts"),
        "{err}"
    );
}

#[test]
fn verbose_prints_the_lifecycle_events_and_no_secrets() {
    // Text: pkit run -v. The marker is in an argument, the environment,
    // the working directory's name and the output: it must never appear
    // in an event line.
    let dir = temp_path("SECRETMARK-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let out = pkit()
        .args(["run", "-v", "-E", "TOKEN=SECRETMARK-env", "-C"])
        .arg(&dir)
        .args([
            "--",
            "sh",
            "-c",
            "echo SECRETMARK-out; exit 3",
            "SECRETMARK-arg",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let events: Vec<&str> = err.lines().filter(|l| l.starts_with("pkit: [")).collect();
    assert!(
        events
            .iter()
            .any(|l| l.starts_with("pkit: [debug] process started") && l.contains("program=sh")),
        "{err}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.starts_with("pkit: [debug] process finished")
                && l.contains("outcome=exited(3)")),
        "{err}"
    );
    for line in &events {
        assert!(!line.contains("SECRETMARK"), "a secret in an event: {line}");
    }
    // Without -v: no event lines.
    let out = pkit().args(["run", "--", "true"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("pkit: ["),
        "{out:?}"
    );

    // JSON: pkit supervise -v --json, a crash then the budget's end.
    let out = pkit()
        .args([
            "supervise",
            "-v",
            "--json",
            "--max-restarts",
            "1",
            "--backoff",
            "10ms",
            "--",
            "sh",
            "-c",
            "exit 4",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let lines = json_lines(&out.stderr);
    let logs: Vec<&serde_json::Value> = lines.iter().filter(|v| v["event"] == "log").collect();
    let messages: Vec<&str> = logs
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    for want in [
        "process started",
        "process finished",
        "supervisor restart",
        "supervisor stopped",
    ] {
        assert!(messages.contains(&want), "{want} missing: {messages:?}");
    }
    let started = logs
        .iter()
        .find(|v| v["message"] == "process started")
        .unwrap();
    assert_eq!(started["program"], "sh");
    assert!(started["pid"].as_u64().unwrap() > 0);
    // The supervisor's own lines are still there.
    assert!(lines.iter().any(|v| v["event"] == "stopped"), "{lines:?}");
}

/// Waits (bounded) for `child` to exit, killing it on the deadline.
fn wait_bounded(mut child: Started, what: &str) -> std::process::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: pkit did not stop");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn int_hup_or_quit_to_pkit_stops_the_run_and_its_tree() {
    for sig in [libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        let file = pid_file();
        let child = pkit()
            .args(["supervise", "--json", "--", "sh", "-c"])
            .arg(tree_script(&file))
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 3);
        kill(child.id(), sig);
        let out = wait_bounded(child, "a stop by signal");
        let _ = std::fs::remove_file(&file);
        assert_all_gone(&pids);
        assert_eq!(out.status.code(), Some(0), "signal {sig}: {out:?}");
        let events = json_lines(&out.stderr);
        assert_eq!(events.last().unwrap()["reason"], "stop_requested", "{sig}");
    }
}

/// USR1, USR2 and ALRM to pkit reach the run's program, as `pkit run`
/// passes them on (a log reopen), and the supervision goes on.
///
/// Sent once pkit has said the run started (its `started` event): the
/// program writes its pid as soon as it runs, which can be before pkit
/// has taken in that the run started (the library's `Started` event, then
/// pkit's loop), and a signal then finds no run going on and is dropped,
/// as between runs (pgroup, under load: USR1 never came in 60 s).
#[test]
fn usr1_usr2_and_alrm_reach_the_program() {
    use std::io::BufRead;
    let file = pid_file();
    let seen = temp_path("sup-seen");
    let script = format!(
        "for s in USR1 USR2 ALRM; do trap \"echo $s >> {s}\" $s; done; \
         trap 'exit 0' TERM; echo $$ >> {p}; while :; do sleep 0.05; done",
        s = seen.display(),
        p = file.display()
    );
    let mut child = pkit()
        .args(["supervise", "--json", "--", "sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{said}");
        said.push_str(&line);
        if line.starts_with('{')
            && serde_json::from_str::<serde_json::Value>(&line).unwrap()["event"] == "started"
        {
            break;
        }
    }
    let pids = read_pids(&file, 1);
    for (sig, name) in [
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGALRM, "ALRM"),
    ] {
        kill(child.id(), sig);
        wait_for_text(&seen, name);
    }
    kill(child.id(), libc::SIGTERM);
    std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
    let out = wait_bounded(child, "a stop after USR1, USR2, ALRM");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&seen);
    assert_all_gone(&pids);
    assert_eq!(out.status.code(), Some(0), "{out:?} {said}");
    // The events; not sh's own "Terminated" for its `sleep` at the stop.
    let events: Vec<serde_json::Value> = said
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let runs = events.iter().filter(|e| e["event"] == "started").count();
    assert_eq!(runs, 1, "one run, never restarted: {events:?}");
    assert_eq!(events.last().unwrap()["reason"], "stop_requested");
}

/// pkit's stderr lines, as a reader thread hands them on.
fn stderr_lines(child: &mut Started) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line that contains `needle` (the lines before it in `seen`).
fn line_with(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    seen: &mut Vec<String>,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with {needle:?} ({e}): {seen:?}"),
        }
    }
}

/// USR1 to pkit reaches the run going on (`--verbose` names its pid), and
/// between runs nobody: the library, which knows when it reaped a run,
/// is asked, so a run that has ended (its exit reported or not) never
/// gets a signal meant for the program, and a number the system may have
/// handed on since is never signalled.
#[test]
fn usr1_goes_to_the_run_going_on_and_is_dropped_between_runs() {
    for mechanism in mechanisms() {
        let file = pid_file();
        let seen = temp_path("sup-usr1-seen");
        // Exits 3 on the USR1, after saying so.
        let script = format!(
            "trap 'echo USR1 >> {s}; exit 3' USR1; echo $$ >> {p}; while :; do sleep 0.05; done",
            s = seen.display(),
            p = file.display()
        );
        let mut child = pkit()
            .args(["supervise", "--verbose", "--mechanism", mechanism])
            .args(["--backoff", "300s", "--", "sh", "-c", &script])
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        let lines = stderr_lines(&mut child);
        let mut said = Vec::new();
        let pid = read_pids(&file, 1)[0];
        kill(child.id(), libc::SIGUSR1);
        let passed = line_with(&lines, "SIGUSR1 passed on", &mut said);
        assert!(
            passed.ends_with(&format!("passed on to the program (pid {pid})")),
            "{mechanism}: {passed}"
        );
        wait_for_text(&seen, "USR1");
        // The run ended (a crash): the pause before the next one.
        line_with(&lines, "restart in", &mut said);
        kill(child.id(), libc::SIGUSR1);
        line_with(
            &lines,
            "SIGUSR1 dropped: the program is not running",
            &mut said,
        );
        kill(child.id(), libc::SIGTERM);
        let out = wait_bounded(child, "a stop after a USR1 between runs");
        // Up to the end of pkit's stderr (the reader's end).
        let mut rest = Vec::new();
        while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(30)) {
            rest.push(line);
        }
        let runs = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(&seen);
        assert_eq!(out.status.code(), Some(0), "{mechanism}: {out:?}");
        assert_eq!(runs.lines().count(), 1, "{mechanism}: no second run");
        assert!(
            !said
                .iter()
                .chain(&rest)
                .any(|l| l.contains("could not be passed on")),
            "{mechanism}: {said:?} {rest:?}"
        );
    }
}

/// In a stop's grace, held by a helper that ignores the SIGTERM, the
/// program that exited on it is not running: a USR1 to pkit then is
/// dropped, not sent to the program's pid (which pkit's library may have
/// reaped already, and the system handed on), though the run's exit is
/// not reported yet.
#[test]
fn usr1_in_a_stops_grace_after_the_program_exited_is_dropped() {
    for mechanism in mechanisms() {
        let file = pid_file();
        // The helper writes its pid once it ignores SIGTERM; the program
        // waits for that, then writes its own.
        let script = format!(
            "sh -c 'trap \"\" TERM; echo $$ >> {p}; exec sleep 300' & \
             until [ -s {p} ]; do sleep 0.01; done; echo $$ >> {p}; \
             while :; do sleep 0.05; done",
            p = file.display()
        );
        let mut child = pkit()
            .args(["supervise", "--verbose", "--mechanism", mechanism])
            .args(["--kill-after", "300s", "--", "sh", "-c", &script])
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        let lines = stderr_lines(&mut child);
        let mut said = Vec::new();
        let pids = read_pids(&file, 2);
        let (helper, program) = (pids[0], pids[1]);
        kill(child.id(), libc::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while state(program).is_some_and(|s| s != 'Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "{mechanism}: the program never exited on the stop's SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        kill(child.id(), libc::SIGUSR1);
        line_with(
            &lines,
            "SIGUSR1 dropped: the program is not running",
            &mut said,
        );
        assert!(
            state(helper).is_some_and(|s| s != 'Z'),
            "{mechanism}: the helper is in its grace"
        );
        // A second stop signal ends the grace at once.
        kill(child.id(), libc::SIGTERM);
        let out = wait_bounded(child, "a second stop signal in the grace");
        let mut rest = Vec::new();
        while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(30)) {
            rest.push(line);
        }
        let _ = std::fs::remove_file(&file);
        assert_all_gone(&pids);
        assert!(
            !said
                .iter()
                .chain(&rest)
                .any(|l| l.contains("SIGUSR1 passed on") || l.contains("could not be passed on")),
            "{mechanism}: {out:?} {said:?} {rest:?}"
        );
    }
}

#[test]
fn a_signal_during_a_backoff_pause_stops_at_once() {
    use std::io::BufRead;
    let file = pid_file();
    let mut child = pkit()
        .args(["supervise", "--json", "--backoff", "300s", "--", "sh", "-c"])
        .arg(format!("echo $$ >> {}; exit 3", file.display()))
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(v.clone());
        if v["event"] == "backoff" {
            break;
        }
    }
    kill(child.id(), libc::SIGTERM);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = wait_bounded(child, "a stop during the pause");
    let runs = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(runs.lines().count(), 1, "no run after the stop");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let last: serde_json::Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped");
    assert_eq!(last["reason"], "stop_requested");
    assert_eq!(last["restarts"], 0);
}

/// After `$2` seconds, listens on 127.0.0.1:`$1` and runs until killed.
const LISTENER: &str = r#"sleep "$2"; exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die "listen: $!"; sleep 300' "$1""#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_health_port_waits_for_a_listener_or_counts_a_crash() {
    use std::io::BufRead;
    // A listener that comes late: ready, then stopped by TERM.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = pkit()
        .args([
            "supervise",
            "--json",
            "--health-port",
            &addr,
            "--",
            "sh",
            "-c",
        ])
        .args([LISTENER, "sh", &port.to_string(), "0.3"])
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let pid = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(v.clone());
        if v["event"] == "ready" {
            break v["pid"].as_i64().unwrap() as i32;
        }
    };
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    kill(child.id(), libc::SIGTERM);
    let out = wait_bounded(child, "the healthy server");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_all_gone(&[pid]);

    // A port that never opens: each run killed after the timeout, a crash.
    let other = free_port();
    let out = pkit()
        .args([
            "supervise",
            "--json",
            "--health-port",
            &format!("127.0.0.1:{}", free_port()),
            "--health-timeout",
            "300ms",
            "--max-restarts",
            "1",
            "--backoff",
            "10ms",
            "--",
            "sh",
            "-c",
        ])
        .args([LISTENER, "sh", &other.to_string(), "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let events = json_lines(&out.stderr);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "unhealthy",
            "exited",
            "backoff",
            "started",
            "unhealthy",
            "exited",
            "stopped"
        ],
        "{events:?}"
    );
    assert_eq!(events[2]["crashed"], true);
    assert_eq!(events[7]["reason"], "restarts_exhausted");
    assert_eq!(events[7]["exit_status"], 124);
}

/// A supervisor that gives up never reports success: runs that exit 0
/// before their health line comes are crashes, and once the budget is
/// spent pkit exits 124 (text and JSON), not the last run's 0. Clean runs
/// under `--restart always` that spend the budget are no failure: 0.
#[test]
fn giving_up_on_runs_that_exit_0_unhealthy_is_not_success() {
    for json in [false, true] {
        let mut args = vec!["supervise"];
        if json {
            args.push("--json");
        }
        args.extend([
            "--health-line",
            "ready",
            "--max-restarts",
            "1",
            "--backoff",
            "10ms",
            "--",
            "true",
        ]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(124), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        if json {
            let events = json_lines(&out.stderr);
            let last = events.last().unwrap();
            assert_eq!(last["reason"], "restarts_exhausted", "{err}");
            assert_eq!(last["exit_status"], 124, "{err}");
            assert!(events
                .iter()
                .any(|e| e["event"] == "exited" && e["exit_code"] == 0 && e["crashed"] == true));
        } else {
            assert_eq!(err.matches("failed its health check").count(), 2, "{err}");
            // Ended on its own before it was ready: a crash, not pkit's.
            assert_eq!(
                err.matches("failed its health check, exited with code 0 (crash)")
                    .count(),
                2,
                "{err}"
            );
            assert!(err.contains("restarts exhausted after 1 restarts"), "{err}");
        }
    }
    // --restart never: the one run failed its check, the same status.
    let out = run(&[
        "supervise",
        "--restart",
        "never",
        "--health-line",
        "ready",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    // Clean runs that spend the budget: nothing failed.
    let out = run(&[
        "supervise",
        "--json",
        "--restart",
        "always",
        "--max-restarts",
        "1",
        "--backoff",
        "10ms",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let events = json_lines(&out.stderr);
    assert_eq!(events.last().unwrap()["exit_status"], 0, "{events:?}");
}

/// The pauses (seconds) of a `--json` run's events, and the storm pauses.
fn pauses(events: &[serde_json::Value]) -> (Vec<f64>, Vec<f64>) {
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .map(|e| e["secs"].as_f64().unwrap())
            .collect()
    };
    (of("backoff"), of("storm_pause"))
}

#[test]
fn storm_pause_max_backoff_reset_after_and_never() {
    // Five crashes within 10 s make a storm: the fifth pause is the storm's.
    let out = run(&[
        "supervise",
        "--json",
        "--backoff",
        "1ms,1",
        "--storm-pause",
        "50ms",
        "--max-restarts",
        "6",
        "--",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let events = json_lines(&out.stderr);
    let (backoffs, storms) = pauses(&events);
    assert_eq!((backoffs.len(), storms), (5, vec![0.05]), "{events:?}");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|k| *k == "backoff" || *k == "storm_pause")
        .collect();
    assert_eq!(kinds[4], "storm_pause", "{kinds:?}");

    // The cap: 1 ms growing tenfold, never above 5 ms (plus 10 % jitter).
    let out = run(&[
        "supervise",
        "--json",
        "--backoff",
        "1ms,10",
        "--max-backoff",
        "5ms",
        "--max-restarts",
        "4",
        "--",
        "sh",
        "-c",
        "exit 1",
    ]);
    let (backoffs, _) = pauses(&json_lines(&out.stderr));
    assert_eq!(backoffs.len(), 4);
    assert!(
        backoffs[2..]
            .iter()
            .all(|&s| (0.0045..=0.0055).contains(&s)),
        "{backoffs:?}"
    );

    // A stable run resets the backoff: without --reset-after the pauses
    // grow tenfold (10 ms, 100 ms), with it they stay at 10 ms.
    for (reset, grows) in [(false, true), (true, false)] {
        let mut args = vec!["supervise", "--json", "--backoff", "10ms,10"];
        if reset {
            args.extend(["--reset-after", "1ms"]);
        }
        args.extend([
            "--max-restarts",
            "2",
            "--",
            "sh",
            "-c",
            "sleep 0.05; exit 1",
        ]);
        let (backoffs, _) = pauses(&json_lines(&run(&args).stderr));
        assert_eq!(backoffs.len(), 2);
        assert_eq!(backoffs[1] > 0.05, grows, "reset {reset}: {backoffs:?}");
    }

    // --restart never: one run, its status.
    let out = run(&[
        "supervise",
        "--restart",
        "never",
        "--",
        "sh",
        "-c",
        "exit 6",
    ]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exited with code 6 (crash); stopping: policy satisfied after 0 restarts"),
        "{err}"
    );
}

#[test]
fn a_second_signal_during_the_grace_kills_at_once() {
    use std::io::BufRead;
    let file = pid_file();
    // The run and its grandchild ignore SIGTERM: the stop's grace (10 s)
    // would run out in full.
    let mut child = pkit()
        .args(["supervise", "--json", "--", "sh", "-c"])
        .arg(format!(
            "trap '' TERM; (trap '' TERM; sleep 300) & echo $! >> {f}; echo $$ >> {f}; while :; do sleep 0.05; done",
            f = file.display()
        ))
        .stderr(Stdio::piped())
        .spawn().map(Started::new)
        .unwrap();
    let pids = read_pids(&file, 2);
    kill(child.id(), libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the grace is running");
    kill(child.id(), libc::SIGINT);
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        lines.push(std::mem::take(&mut line));
    }
    let out = wait_bounded(child, "a second signal");
    let _ = std::fs::remove_file(&file);
    assert_all_gone(&pids);
    // Ended by the SIGKILL that ended its run, as `pkit run`.
    assert_eq!(out.status.signal(), Some(9), "{lines:?}");
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped", "{lines:?}");
    assert_eq!(last["reason"], "cancelled", "{lines:?}");
}

#[test]
fn verbose_text_prints_the_supervisors_events() {
    let out = run(&[
        "supervise",
        "-v",
        "--max-restarts",
        "1",
        "--backoff",
        "10ms",
        "--",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "pkit: [debug] process started",
        "pkit: [debug] process finished",
        "pkit: [debug] supervisor restart",
        "pkit: [debug] supervisor stopped",
    ] {
        assert!(err.lines().any(|l| l.starts_with(want)), "{want}: {err}");
    }
    // The one line per ended run is still there.
    assert!(
        err.contains("exited with code 4 (crash); restart in"),
        "{err}"
    );
}

#[test]
fn sigkill_to_pkit_still_ends_the_current_runs_tree() {
    // pkit can't stop anything gracefully then: its owner-death guard
    // ends the run's tree.
    let file = pid_file();
    let child = pkit()
        .args(["supervise", "--", "sh", "-c"])
        .arg(tree_script(&file))
        .stderr(Stdio::null())
        .spawn()
        .map(Started::new)
        .unwrap();
    let pids = read_pids(&file, 3);
    kill(child.id(), libc::SIGKILL);
    let out = wait_bounded(child, "SIGKILL");
    let _ = std::fs::remove_file(&file);
    assert_eq!(shell_status(out.status), 128 + 9);
    assert_all_gone(&pids);
}

/// `-k`/`--grace` sets the stop's grace, as for `pkit run`. Shown with a
/// long one (so no speed is asserted): 12 s after the stop, past the 10 s
/// default, the tree that ignores SIGTERM still runs; a second signal then
/// ends it. Before, `pkit supervise` had no such flag (refused as unknown).
#[test]
fn grace_sets_how_long_a_stop_waits() {
    for flag in ["-k", "--grace"] {
        let file = pid_file();
        let child = pkit()
            .args(["supervise", "--json", flag, "1h", "--", "sh", "-c"])
            .arg(format!(
                "trap '' TERM; (trap '' TERM; sleep 300) & echo $! >> {f}; echo $$ >> {f}; while :; do sleep 0.05; done",
                f = file.display()
            ))
            .stderr(Stdio::piped())
            .spawn().map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 2);
        kill(child.id(), libc::SIGTERM);
        if flag == "-k" {
            std::thread::sleep(std::time::Duration::from_secs(12));
            assert!(
                pids.iter().all(|&p| !pid_gone(p)),
                "{flag}: the tree was killed before its grace"
            );
        }
        kill(child.id(), libc::SIGINT);
        let out = wait_bounded(child, "a second signal");
        let _ = std::fs::remove_file(&file);
        assert_all_gone(&pids);
        assert_eq!(out.status.signal(), Some(9), "{flag}: {out:?}");
    }
}

/// The run a stop ends is reported ended, as every other run is: in JSON
/// an "exited" event (its signal) before "stopped"; in text, its line says
/// how it ended.
#[test]
fn the_run_a_stop_ends_is_reported_as_ended() {
    for json in [true, false] {
        let file = pid_file();
        let mut cmd = pkit();
        cmd.arg("supervise");
        if json {
            cmd.arg("--json");
        }
        let child = cmd
            .args(["--", "sh", "-c"])
            .arg(tree_script(&file))
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 3);
        kill(child.id(), libc::SIGTERM);
        let out = wait_bounded(child, "a stop");
        let _ = std::fs::remove_file(&file);
        assert_all_gone(&pids);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        if json {
            let events = json_lines(&out.stderr);
            let names: Vec<&str> = events
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["started", "exited", "stopped"], "{events:?}");
            assert_eq!(events[1]["signal"], libc::SIGTERM, "{events:?}");
            assert_eq!(events[1]["pid"], events[0]["pid"], "{events:?}");
            // pkit's own stop is no crash.
            assert_eq!(events[1]["crashed"], false, "{events:?}");
            assert_eq!(events[1]["stopped_by_pkit"], true, "{events:?}");
        } else {
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(
                text.contains("killed by SIGTERM (stopped by pkit); stopping: stop requested"),
                "{text}"
            );
            assert!(!text.contains("crash"), "{text}");
        }
    }
}

/// Each run is labelled by how it really ended: a crash by a signal of its
/// own (SIGSEGV raised by the program) is a crash, in text and JSON, and
/// not "stopped by pkit"; a clean exit is clean.
#[test]
fn runs_are_labelled_by_how_they_really_ended() {
    let out = run(&[
        "supervise",
        "--restart",
        "never",
        "--",
        "sh",
        "-c",
        "kill -SEGV $$",
    ]);
    // Ended by the same signal (no core), as `pkit run`.
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("killed by SIGSEGV (crash)"), "{text}");
    let out = run(&[
        "supervise",
        "--json",
        "--restart",
        "never",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    let events = json_lines(&out.stderr);
    let exited = events.iter().find(|e| e["event"] == "exited").unwrap();
    // A SIGTERM pkit did not send: the run's own crash.
    assert_eq!(exited["signal"], libc::SIGTERM, "{events:?}");
    assert_eq!(exited["crashed"], true, "{events:?}");
    assert_eq!(exited["stopped_by_pkit"], false, "{events:?}");
    let out = run(&["supervise", "--", "true"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("exited with code 0 (clean)"), "{text}");
}

/// HUP ignored when `pkit supervise` starts (`nohup`) stays ignored: it
/// stops nothing, and the program inherits it ignored; TERM still stops
/// the supervision. Before, pkit caught HUP (and stopped), and the program
/// started with HUP at its default.
#[test]
fn hup_ignored_when_pkit_starts_stops_nothing() {
    let file = pid_file();
    let mut child = pkit_ignoring(libc::SIGHUP)
        .args(["supervise", "--json", "--", "sh", "-c"])
        .arg(tree_script(&file))
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .unwrap();
    let pids = read_pids(&file, 3);
    let hup_ignored_in_program = in_mask(pids[2], "SigIgn:", libc::SIGHUP);
    for _ in 0..2 {
        kill(child.id(), libc::SIGHUP);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let still_running = child.try_wait().unwrap().is_none();
    if still_running {
        kill(child.id(), libc::SIGTERM);
    }
    let out = wait_bounded(child, "a stop by TERM");
    let _ = std::fs::remove_file(&file);
    assert_all_gone(&pids);
    assert!(still_running, "HUP stopped the supervision: {out:?}");
    assert!(hup_ignored_in_program, "the program's SigIgn lacks HUP");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let events = json_lines(&out.stderr);
    assert_eq!(events.last().unwrap()["reason"], "stop_requested");
    let runs = events.iter().filter(|e| e["event"] == "started").count();
    assert_eq!(runs, 1, "{events:?}");
}

/// An executable script without a `#!` line (ENOEXEC from the kernel) is
/// supervised as `pkit run` runs it: by `/bin/sh`, as execvp(3) and so
/// timeout(1) run it, named by its path (a relative one is pkit's working
/// directory's) or found on `PATH`, with its arguments, restarted after
/// each crash until a clean run, and no failed start reported. A file that
/// may not be executed is still refused (126, `not_executable`, cannot
/// start). Before the fix the script was refused as that file is: 126,
/// "a run could not start (not_executable)".
#[test]
fn a_script_without_a_shebang_line_is_supervised_as_sh_runs_it() {
    let dir = temp_path("noshebang");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("pkit-supervise-noshebang");
    write_file(&script, &format!("{FLAKY}\n"), 0o755);
    let plain = dir.join("pkit-supervise-not-executable");
    write_file(&plain, "echo ran\n", 0o644);
    let path = path_with(&dir);
    for mechanism in mechanisms() {
        for program in [
            script.to_str().unwrap(),
            "pkit-supervise-noshebang",
            "./pkit-supervise-noshebang",
        ] {
            let counter = dir.join("counter");
            let _ = std::fs::remove_file(&counter);
            let out = pkit()
                .env("PATH", &path)
                .current_dir(&dir)
                .args(["supervise", "--json", "--mechanism", mechanism])
                .args(["--backoff", "10ms", "--", program])
                .arg(&counter)
                .output()
                .unwrap();
            let what = format!("{mechanism} {program}: {out:?}");
            assert_eq!(out.status.code(), Some(0), "{what}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "attempt 0\nattempt 1\nattempt 2\n",
                "{what}"
            );
            let events = json_lines(&out.stderr);
            let kinds: Vec<&str> = events
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(
                kinds,
                [
                    "started", "exited", "backoff", "started", "exited", "backoff", "started",
                    "exited", "stopped"
                ],
                "{what}"
            );
            assert_eq!(events[1]["exit_code"], 3, "{what}");
            assert_eq!(events[8]["reason"], "policy_satisfied", "{what}");
            assert_eq!(events[8]["restarts"], 2, "{what}");
            assert_eq!(
                std::fs::read_to_string(&counter).unwrap().trim(),
                "3",
                "{what}"
            );
        }
        // Text: not a word of a failed start.
        let counter = dir.join("counter");
        let _ = std::fs::remove_file(&counter);
        let out = pkit()
            .args([
                "supervise",
                "--backoff",
                "10ms",
                "--mechanism",
                mechanism,
                "--",
            ])
            .arg(&script)
            .arg(&counter)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mechanism}: {err}");
        assert_eq!(err.lines().count(), 3, "{mechanism}: {err}");
        assert!(!err.contains("could not start"), "{mechanism}: {err}");

        let out = pkit()
            .args(["supervise", "--json", "--mechanism", mechanism, "--"])
            .arg(&plain)
            .output()
            .unwrap();
        let what = format!("{mechanism}: {out:?}");
        assert_eq!(out.status.code(), Some(126), "{what}");
        assert!(out.stdout.is_empty(), "the plain file ran: {what}");
        let events = json_lines(&out.stderr);
        assert_eq!(events.len(), 2, "{what}");
        assert_eq!(events[0]["event"], "spawn_failed", "{what}");
        assert_eq!(events[0]["error_kind"], "not_executable", "{what}");
        assert_eq!(events[1]["reason"], "cannot_start", "{what}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

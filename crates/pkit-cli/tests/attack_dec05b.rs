//! A hostile user of the `pkit` CLI (attack13, 2026-12-05): requests to
//! end with -k, a second pkit inside the first killed at bad moments, a
//! non-root user, and a reader that goes away.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// A leftover that writes `term` to `file` when SIGTERM reaches it (then
/// ends), its pid first; the program (`sh`, SIGTERM at its default) writes
/// its own pid, and waits.
fn term_noting_tree(file: &std::path::Path) -> String {
    format!(
        "sh -c 'trap \"echo term >> {f}; exit 0\" TERM; echo $$ >> {f}; \
         while :; do sleep 0.1; done' & echo $$ >> {f}; wait",
        f = file.display()
    )
}

/// MEDIUM, fixed. `pkit run -k 30 -- job` and one `kill -TERM <pkit>`:
/// the TERM goes to the program alone and arms the SIGKILL 30 s later (as
/// documented). When the program ends of it, what it left running must
/// get --signal ("what it left running gets --signal and the rest of the
/// grace, then SIGKILL"); pkit only waited out the armed grace and then
/// SIGKILLed the leftovers, which never saw a SIGTERM (a daemon's clean
/// shutdown never ran; pkit took the whole -k to end). Without -k the
/// leftovers did get it. Failed before in all three mechanisms (no
/// `term` noted, `leftovers_killed` 1 with the 30 s spent).
#[test]
fn leftovers_of_a_program_ended_by_a_forwarded_term_get_the_signal_with_k() {
    at_once(mechanisms(), |mechanism| {
        let file = temp_path(&format!("k-term-{mechanism}"));
        let child = pkit()
            .args([
                "run",
                "-q",
                "--json",
                "-k",
                "30",
                "--mechanism",
                mechanism,
                "--",
            ])
            .args(["sh", "-c", &term_noting_tree(&file)])
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 2);
        kill(child.id(), libc::SIGTERM);
        let out = child.wait_with_output().unwrap();
        assert_all_gone(&pids);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        let r = report(&out);
        assert!(
            text.contains("term"),
            "{mechanism}: the leftover never got SIGTERM: {r}"
        );
        assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{mechanism}: {r}");
        assert_eq!(r["killed_after_grace"], false, "{mechanism}: {r}");
    });
}

/// The same with --foreground and a timeout: the timeout's signal went to
/// the program alone; its leftovers get --signal when it ends (the tree
/// "still ends when the program does"), not the armed SIGKILL alone.
/// Failed before in all three mechanisms.
#[test]
fn leftovers_of_a_foreground_timeout_get_the_signal() {
    at_once(mechanisms(), |mechanism| {
        let file = temp_path(&format!("fg-timeout-{mechanism}"));
        // The leftover must have set its trap (and said its pid, after it)
        // when the timeout comes: a try where it had not (a loaded machine
        // slow to start it) is void and made again with the timeout
        // doubled (1 s first, up to 16 s).
        let mut timeout = 1;
        let out = loop {
            let _ = std::fs::remove_file(&file);
            let out = pkit()
                .args(["run", "-q", "--json", "--foreground", "--timeout"])
                .arg(timeout.to_string())
                .args(["-k", "30", "--mechanism", mechanism, "--"])
                .args(["sh", "-c", &term_noting_tree(&file)])
                .output()
                .unwrap();
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let said: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if said.len() >= 2 || timeout >= 16 {
                break out;
            }
            assert_all_gone(&said);
            timeout *= 2;
        };
        let pids = read_pids(&file, 2);
        assert_all_gone(&pids);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        let r = report(&out);
        assert!(
            text.contains("term"),
            "{mechanism}: the leftover never got SIGTERM: {r}"
        );
        assert_eq!(out.status.code(), Some(124), "{mechanism}: {r}");
    });
}

/// Guard: a second TERM (the teardown) still gives the leftovers the rest
/// of its grace, not a second --signal round that restarts it: the tree
/// had --signal once, and pkit ends with the program's signal.
#[test]
fn a_second_term_still_ends_the_tree_once() {
    at_once(mechanisms(), |mechanism| {
        let file = temp_path(&format!("second-term-{mechanism}"));
        let script = format!(
            "trap : TERM; sh -c 'trap \"echo term >> {f}; exit 0\" TERM; echo $$ >> {f}; \
             while :; do sleep 0.1; done' & echo $$ >> {f}; while :; do sleep 0.1; done",
            f = file.display()
        );
        let child = pkit()
            .args(["run", "-q", "-k", "2", "--mechanism", mechanism, "--"])
            .args(["sh", "-c", &script])
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 2);
        kill(child.id(), libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(200));
        kill(child.id(), libc::SIGTERM);
        let out = child.wait_with_output().unwrap();
        assert_all_gone(&pids);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        // The program ignores TERM: the armed SIGKILL ends it (137); the
        // leftover had the teardown's TERM.
        assert!(text.contains("term"), "{mechanism}: {text:?}");
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{mechanism}");
    });
}

/// Guard: `pkit run -- pkit run -- tree`, the outer SIGKILLed at a range
/// of moments from its start (before, during and after the inner's spawn):
/// nothing of the inner's tree survives, whatever the mechanism.
#[test]
fn a_nested_pkit_whose_outer_is_killed_early_leaves_nothing() {
    at_once(mechanisms(), |mechanism| {
        for delay_ms in [0u64, 5, 20, 60, 150, 400] {
            let file = temp_path(&format!("nested-kill-{mechanism}-{delay_ms}"));
            let mut child = pkit()
                .env("PKIT_MECHANISM", mechanism)
                .args([
                    "run",
                    "-q",
                    "--",
                    env!("CARGO_BIN_EXE_pkit"),
                    "run",
                    "-q",
                    "--",
                ])
                .args(["sh", "-c", &tree_script(&file)])
                .spawn()
                .map(Started::new)
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            kill(child.id(), libc::SIGKILL);
            let _ = child.wait();
            // Whatever of the tree was started wrote its pid by now, or
            // never will (its writer was killed): a short look.
            std::thread::sleep(Duration::from_millis(500));
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            assert_all_gone(&pids);
            let _ = std::fs::remove_file(&file);
        }
    });
}

/// Guard: `pkit run -- yes | head -1`: pkit's stdout is the program's,
/// whose SIGPIPE ends it; pkit mirrors that (141 in the shell) and leaves
/// nothing.
#[test]
fn a_reader_that_goes_away() {
    for mechanism in mechanisms() {
        let script = format!(
            "{} run -q --mechanism {mechanism} -- yes | head -1 >/dev/null; \
             echo ${{PIPESTATUS[0]}}",
            env!("CARGO_BIN_EXE_pkit")
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), "141", "{mechanism}: {text:?}");
    }
}

/// Guard: as `nobody`, where the cgroup tree is not writable, `pkit run`
/// falls back to a process group (the note says so), contains the
/// program's background children, and refuses a cap with 125.
#[test]
fn nobody_gets_a_process_group_and_leaves_nothing() {
    let have_setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // SAFETY: geteuid has no preconditions.
    if !have_setpriv || unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    // A directory nobody may write in (not sticky: /tmp's
    // fs.protected_regular would refuse nobody's `>>` to root's file).
    let dir = temp_path("nobody");
    std::fs::create_dir(&dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let file = dir.join("pids");
    let pkit_bin = env!("CARGO_BIN_EXE_pkit");
    let nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", pkit_bin])
            .args(args)
            .env_remove("PKIT_MECHANISM")
            .output()
            .unwrap()
    };
    let script = format!(
        "sleep 300 & echo $! >> {f}; sleep 300 & echo $! >> {f}; echo $$ >> {f}",
        f = file.display()
    );
    let out = nobody(&["run", "--", "sh", "-c", &script]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pids = read_pids(&file, 3);
    assert_all_gone(&pids);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let can_cgroup = std::fs::metadata("/sys/fs/cgroup/unified").is_ok()
        || std::fs::metadata("/sys/fs/cgroup/cgroup.procs").is_ok();
    if can_cgroup {
        assert!(stderr.contains("process group"), "{stderr}");
    }
    let out = nobody(&["run", "--memory-max", "100M", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// LOW, fixed. A soft `RLIMIT_NOFILE` of 20 (the hard limit far above)
/// left the cgroup mechanism no descriptor to start a program with:
/// `prlimit --nofile=20:1024 pkit run -- true` was a 125 ("true: cannot
/// start: Too many open files"), where `timeout 5 true` runs. pkit holds
/// about 21 descriptors of its own for one run (runtime, signals, guard
/// socket, the cgroup directory, pidfds). pkit now raises its own soft
/// limit to the hard one (every mechanism since review rv23) and hands the
/// program the pair it was given: `ulimit -n` 20, `ulimit -Hn` 1024.
/// Failed before with 125 under the cgroup mechanism.
#[test]
fn a_soft_descriptor_limit_of_20_still_runs_the_program() {
    let have_prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_prlimit {
        eprintln!("skipped: no prlimit");
        return;
    }
    for mechanism in mechanisms() {
        let out = std::process::Command::new("prlimit")
            .args(["--nofile=20:1024", env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "-q", "--mechanism", mechanism, "--"])
            .args(["sh", "-c", "ulimit -n; ulimit -Hn"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("containment unavailable") {
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{mechanism}: {stderr}");
        // The program still gets the limits pkit was given.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "20\n1024",
            "{mechanism}"
        );
    }
}

/// Under the same small soft limit, a `--rlimit NOFILE=30` still decides
/// the program's limit: pkit's restoring of the limit it was given does
/// not override the user's.
#[test]
fn a_users_nofile_rlimit_wins_over_the_restored_one() {
    let have_prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_prlimit {
        eprintln!("skipped: no prlimit");
        return;
    }
    for mechanism in mechanisms() {
        let out = std::process::Command::new("prlimit")
            .args(["--nofile=20:1024", env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "-q", "--mechanism", mechanism])
            .args(["--rlimit", "NOFILE=30", "--"])
            .args(["sh", "-c", "ulimit -n; ulimit -Hn"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("containment unavailable") {
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{mechanism}: {stderr}");
        // NOFILE=30 sets both limits, as prlimit does.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "30\n30",
            "{mechanism}"
        );
    }
}
